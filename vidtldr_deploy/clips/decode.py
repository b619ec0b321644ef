"""Decode the sampled frames of one video file with PyAV (FFmpeg ships inside its wheel)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from vidtldr_deploy.clips.sampling import sample_indices
from vidtldr_deploy.errors import InputError, VidTLDRError


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise InputError(f"{path}: cannot open as a video ({err})") from err


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise InputError(f"{path}: no video stream")
    return container.streams.video[0]


def count_frames(path: str | Path) -> int:
    """Frames in the first video stream, counted from the packets (no decoding).

    Header counts (`stream.frames`) are absent in WebM/Matroska and only trusted by the muxer
    elsewhere; counting the packets is what decord's len(), which the official loaders use, does
    in effect, and costs one read of the file without decoding."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        try:
            # Flush packets (size 0) mark the end of the stream, not frames.
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise InputError(f"{path}: cannot read the video ({err})") from err


def decode_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """The frames at `indices` (presentation order, repeats allowed) as uint8 RGB (T, H, W, 3)."""
    path = Path(path)
    wanted = set(indices)
    last = max(indices)
    picked: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    picked[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
        except (av.FFmpegError, OSError, ValueError) as err:
            raise InputError(f"{path}: cannot decode the video ({err})") from err
    missing = sorted(wanted - picked.keys())
    if missing:
        raise InputError(
            f"{path}: the video ended before frame {missing[0]} (decoded {len(picked)} of the "
            f"{len(wanted)} sampled frames); the file may be truncated or corrupt"
        )
    return np.stack([picked[i] for i in indices])


def sample_frames(path: str | Path, sampling: str, t: int) -> tuple[np.ndarray, list[int]]:
    """The t frames a sampling picks from the video at `path`, and their indices."""
    path = Path(path)
    n = count_frames(path)
    try:
        indices = sample_indices(sampling, n, t)
    except VidTLDRError as err:
        raise InputError(f"{path}: {err}") from err
    return decode_frames(path, indices), indices
