"""Decode the sampled frames of one video file with PyAV (FFmpeg ships inside its wheel)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from vidtldr_deploy.clips.limits import DecodeLimits
from vidtldr_deploy.clips.sampling import sample_indices
from vidtldr_deploy.errors import InputError, VidTLDRError

_READ_ERRORS = (av.FFmpegError, OSError, ValueError)


def _failure(path: Path, what: str, err: BaseException) -> BaseException:
    """The error to raise for a failed FFmpeg call. PyAV reports a signal that arrived during a
    blocking read (a pipe, a slow disk) as EINTR or AVERROR_EXIT and swallows the Python
    exception the handler raised; that is an interrupt, never a bad file."""
    if isinstance(err, (InterruptedError, av.ExitError)):
        return KeyboardInterrupt()
    return InputError(f"{path}: {what} ({err})")


def _open(path: Path):
    try:
        return av.open(str(path))
    except _READ_ERRORS as err:
        raise _failure(path, "cannot open as a video", err) from err


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise InputError(f"{path}: no video stream")
    return container.streams.video[0]


def _count_packets(container, stream, path: Path) -> int:
    try:
        # Flush packets (size 0) mark the end of the stream, not frames.
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except _READ_ERRORS as err:
        raise _failure(path, "cannot read the video", err) from err


def count_frames(path: str | Path) -> int:
    """Frames in the first video stream, counted from the packets (no decoding).

    Header counts (`stream.frames`) are absent in WebM/Matroska and only trusted by the muxer
    elsewhere; counting the packets is what decord's len(), which the official loaders use, does
    in effect, and costs one read of the file without decoding."""
    path = Path(path)
    with _open(path) as container:
        return _count_packets(container, _video_stream(container, path), path)


def _upright(frame) -> np.ndarray:
    """The frame as a player shows it: a display matrix (phones record portrait video as rotated
    landscape) is applied in quarter turns, counterclockwise as FFmpeg states the angle."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # PyAV >= 14 reads it
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def decode_frames(
    path: str | Path, indices: list[int], limits: DecodeLimits | None = None
) -> np.ndarray:
    """The frames at `indices` (presentation order, repeats allowed) as uint8 RGB (T, H, W, 3),
    upright. Every decoded frame is held to `limits` before it is converted."""
    path = Path(path)
    limits = limits or DecodeLimits.resolve()
    wanted = set(indices)
    last = max(indices)
    picked: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    # The header may understate a frame (each PNG of a .mov has its own size).
                    limits.check_clip(str(path), frame.width, frame.height, len(indices))
                    picked[i] = _upright(frame)
                if i >= last:
                    break
        except _READ_ERRORS as err:
            raise _failure(path, "cannot decode the video", err) from err
    missing = sorted(wanted - picked.keys())
    if missing:
        raise InputError(
            f"{path}: the video ended before frame {missing[0]} (decoded {len(picked)} of the "
            f"{len(wanted)} sampled frames); the file may be truncated or corrupt"
        )
    return np.stack([picked[i] for i in indices])


def sample_frames(
    path: str | Path, sampling: str, t: int, limits: DecodeLimits | None = None
) -> tuple[np.ndarray, list[int]]:
    """The t frames a sampling picks from the video at `path`, and their indices. The frame size
    in the stream's header is held to `limits` before anything is decoded."""
    path = Path(path)
    limits = limits or DecodeLimits.resolve()
    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        limits.check_clip(str(path), ctx.width or 0, ctx.height or 0, t)
        n = _count_packets(container, stream, path)
    try:
        indices = sample_indices(sampling, n, t)
    except VidTLDRError as err:
        raise InputError(f"{path}: {err}") from err
    return decode_frames(path, indices, limits), indices
