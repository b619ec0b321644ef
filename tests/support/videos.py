"""Tiny real video files for tests, written with PyAV: a still background, a moving square, and
the frame index drawn as bright/dark cells, so a test can read back which frames were decoded."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 64, 48
CELL = 8  # macroblock-aligned cells survive every codec's compression
BITS = 6  # frame indices 0..63


@dataclass(frozen=True)
class VideoCase:
    suffix: str
    codec: str
    pix_fmt: str = "yuv420p"

    @property
    def id(self) -> str:
        return f"{self.codec}{self.suffix}"


# Codec/container pairs the loader should read; an encoder missing from the wheel's FFmpeg is
# skipped by the tests (see encoder_available).
VIDEO_CASES = [
    VideoCase(".avi", "mpeg4"),
    VideoCase(".mp4", "mpeg4"),
    VideoCase(".mp4", "libx264"),
    VideoCase(".mkv", "libx264"),
    VideoCase(".webm", "libvpx"),
    VideoCase(".webm", "libvpx-vp9"),
    VideoCase(".mov", "mjpeg", "yuvj420p"),
]

# Encoder settings for near-lossless tiny frames: the cells must read back exactly.
_OPTIONS = {
    # preset "fast" keeps B-frames, so decoding must reorder frames into presentation order.
    # x264 is byte-identical from run to run only on one thread with cpu-independent=1 (see
    # vidtldr_deploy/clips/synthetic.py); the containers need fflags=+bitexact (CONTAINER_OPTIONS).
    "libx264": {"crf": "8", "preset": "fast", "x264-params": "cpu-independent=1:threads=1"},
    "libvpx": {"crf": "4", "b": "4M"},
    "libvpx-vp9": {"crf": "4", "b": "0", "deadline": "realtime", "cpu-used": "8"},
}


# Matroska/WebM write a random segment UID, and every muxer stamps its version, unless bit-exact.
CONTAINER_OPTIONS = {"fflags": "+bitexact"}


def encoder_available(codec: str) -> bool:
    import av

    try:
        av.codec.Codec(codec, "w")
    except Exception:  # UnknownCodecError, or a decoder-only build
        return False
    return True


def draw_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """uint8 RGB (height, width, 3): a static gradient, a red square moving right one pixel per
    frame, and in the top band one white cell per set bit of `index` (cell b = bit b)."""
    frame = np.zeros((height, width, 3), np.uint8)
    ramp = np.linspace(40, 120, width).astype(np.uint8)
    frame[CELL:, :, :] = ramp[None, :, None]
    frame[CELL:, :, 2] = 90
    x = index % (width - CELL)
    frame[2 * CELL : 3 * CELL, x : x + CELL] = (230, 30, 30)
    for b in range(BITS):
        if index >> b & 1:
            frame[:CELL, b * CELL : (b + 1) * CELL] = 255
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index draw_frame drew into a decoded (H, W, 3) frame."""
    index = 0
    for b in range(BITS):
        cell = frame[1 : CELL - 1, b * CELL + 1 : (b + 1) * CELL - 1]
        if cell.mean() > 128:
            index |= 1 << b
    return index


def write_video(
    path: str | Path,
    n_frames: int,
    case: VideoCase = VIDEO_CASES[0],
    width: int = WIDTH,
    height: int = HEIGHT,
    fps: int = 25,
) -> Path:
    """A `n_frames`-frame video at `path`, encoded as `case` says; the same bytes on every run."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w", options=dict(CONTAINER_OPTIONS)) as container:
        stream = container.add_stream(case.codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, case.pix_fmt
        stream.time_base = Fraction(1, fps)
        if case.codec in ("mpeg4", "mjpeg"):
            stream.bit_rate = 8_000_000
            stream.codec_context.qmax = 2
        stream.options = dict(_OPTIONS.get(case.codec, {}))
        stream.codec_context.thread_count = 1
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_video_folder(
    folder: str | Path, count: int, frames: int = 10, step: int = 3, stem: str = "clip"
) -> Path:
    """`count` videos `folder/clip0.mp4`, ... of `frames`, `frames + step`, ... frames."""
    folder = Path(folder)
    for i in range(count):
        write_video(folder / f"{stem}{i}.mp4", frames + step * i)
    return folder


def flat_output(result) -> str:
    """A CLI result's output on one line, as a terminal wraps it away: for matching messages."""
    return " ".join(result.output.split())


def write_png_mov(path: str | Path, width: int, height: int, frames: int = 2) -> Path:
    """A .mov of black PNG frames: a few hundred KB on disk however large the frames are."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: str | Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    """An AAC-in-MP4 file with no video stream."""
    import av

    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        tone = np.sin(np.arange(samples) * 2 * np.pi * 440 / rate).astype(np.float32)
        step = 1024
        for start in range(0, samples, step):
            chunk = tone[None, start : start + step]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_garbage(path: str | Path, size: int = 4096, seed: int = 0) -> Path:
    """Random bytes under a video suffix."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes())
    return path
