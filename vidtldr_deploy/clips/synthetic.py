"""A seeded synthetic video task where only a small part of each frame decides the label.

Each clip shows a scrolling striped background and a crowd of coloured squares drifting and
bouncing; one of them, the *marked* square, has a white border. The label is the fill colour of
the marked square (red, green, blue, yellow). The unmarked squares take the same four colours, so
the colours present in a frame say little: a model has to find the white border and read the colour
inside it. Unmarked squares are drawn over the marked one, so it is sometimes partly hidden.

Clips are written as real H.264 files. x264 picks code paths by CPU feature and thread count, and
its output then differs by machine (decoded pixels by up to 33 grey levels); a single thread and
`cpu-independent=1` make the stream identical from run to run, and the muxer's `+bitexact` flag
leaves out its version stamp, so the files are byte-identical.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidtldr_deploy.errors import InputError

CLASSES = ("red", "green", "blue", "yellow")
_COLOURS = np.array([(215, 45, 40), (40, 190, 60), (50, 85, 225), (225, 205, 40)], np.float32)
_BORDER = 255  # the marker: background (<= 165) and fills (<= 245 in two channels) stay darker
SIZE = 64  # frame side in pixels
FRAMES = 16  # frames per video (a model samples its T of them)
FPS = 25
MARKED_SIDE = 12  # the marked square, border included
BORDER = 2
# Deterministic H.264: see the module docstring. crf 12 keeps 2-pixel borders and colours intact.
X264_OPTIONS = {"crf": "12", "preset": "medium", "x264-params": "cpu-independent=1:threads=1"}
CONTAINER_OPTIONS = {"fflags": "+bitexact"}
# Sets of clips by seed: the demo model was trained on set 1 and selected on set 2; the clips the
# CLI makes for the demo are set 3, and tests draw their own.
TRAIN_SEED, VALIDATION_SEED, DEMO_CLIP_SEED = 1, 2, 3
DEMO_CLIPS = 48  # clips the CLI makes for the demo when none are given
LABELS_CSV = "labels.csv"
MASKS_NPZ = "masks.npz"


@dataclass(frozen=True)
class SyntheticClip:
    name: str  # file stem
    frames: np.ndarray  # uint8 (FRAMES, SIZE, SIZE, 3), before encoding
    mask: np.ndarray  # bool (FRAMES, SIZE, SIZE): pixels of the marked square that are visible
    label: int  # index into CLASSES


def clip_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Clip `index` of the set `seed`: independent of how many clips are made, or in what order."""
    return np.random.SeedSequence([seed, index])


def _background(rng: np.random.Generator, size: int, n_frames: int) -> np.ndarray:
    """Three scrolling colour gratings, kept in 15..165 so nothing is as bright as the marker."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((n_frames, size, size, 3), np.float32)
    for _ in range(3):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(0.15, 0.45)
        speed = rng.uniform(-0.6, 0.6)
        phase = rng.uniform(0, 2 * np.pi)
        tint = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        proj = xx * np.cos(theta) + yy * np.sin(theta)
        for t in range(n_frames):
            wave = np.sin(freq * proj + phase + speed * t)
            out[t] += (wave[..., None] * 0.5 + 0.5) * tint * 50
    return out + 15


def _paths(rng: np.random.Generator, sides: np.ndarray, size: int, frames: int, speed: tuple):
    """Top-left corners (n, frames, 2) of squares of `sides` (n,) moving at constant speed and
    bouncing off the edges."""
    n = len(sides)
    span = (size - sides)[:, None].astype(np.float64)
    pos = rng.uniform(0, 1, (n, 2)) * span
    angle = rng.uniform(0, 2 * np.pi, n)
    vel = rng.uniform(*speed, n)[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    out = np.empty((n, frames, 2))
    for t in range(frames):
        raw = pos + vel * t
        # Reflect into [0, span]: a bounce off each wall.
        folded = np.mod(raw, 2 * span)
        out[:, t] = np.where(folded > span, 2 * span - folded, folded)
    return np.rint(out).astype(int)


def render_clip(seed: int, index: int, size: int = SIZE, n_frames: int = FRAMES) -> SyntheticClip:
    """Clip `index` of the set `seed`, as frames with its label and the marked square's mask."""
    rng = np.random.default_rng(clip_seed(seed, index))
    label = int(rng.integers(len(CLASSES)))
    frames = _background(rng, size, n_frames)
    n_others = int(rng.integers(7, 11))
    other_sides = rng.integers(6, 13, n_others)
    other_colours = _COLOURS[rng.integers(len(CLASSES), size=n_others)]
    other_colours = other_colours + rng.uniform(-20, 20, other_colours.shape)
    marked_colour = _COLOURS[label] + rng.uniform(-20, 20, 3)
    marked = _paths(rng, np.array([MARKED_SIDE]), size, n_frames, (0.8, 2.2))[0]
    others = _paths(rng, other_sides, size, n_frames, (0.0, 2.2))
    mask = np.zeros((n_frames, size, size), bool)
    for t in range(n_frames):
        y, x = marked[t]
        s = MARKED_SIDE
        frames[t, y : y + s, x : x + s] = _BORDER
        frames[t, y + BORDER : y + s - BORDER, x + BORDER : x + s - BORDER] = marked_colour
        mask[t, y : y + s, x : x + s] = True
        for path, side, colour in zip(others, other_sides, other_colours):
            oy, ox = path[t]
            frames[t, oy : oy + side, ox : ox + side] = colour
            mask[t, oy : oy + side, ox : ox + side] = False
    pixels = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return SyntheticClip(f"clip_{index:05d}", pixels, mask, label)


def write_video(frames: np.ndarray, path: str | Path, fps: int = FPS) -> Path:
    """uint8 RGB frames (F, H, W, 3) -> an H.264 MP4 at `path`, byte-identical on every run.
    Written beside `path` and renamed into place, so an interrupted write leaves no video."""
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        _encode(frames, partial, fps)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _encode(frames: np.ndarray, path: Path, fps: int) -> None:
    import av

    with av.open(str(path), mode="w", options=dict(CONTAINER_OPTIONS)) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.thread_count = 1
        stream.options = dict(X264_OPTIONS)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@dataclass(frozen=True)
class SyntheticSet:
    folder: Path
    videos: list[Path]
    labels_csv: Path
    masks_npz: Path
    labels: list[int]


def write_task(
    folder: str | Path,
    count: int,
    seed: int = 0,
    start: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticSet:
    """Write clips start..start+count-1 of set `seed` into `folder`: one MP4 per clip, `labels.csv`
    (`path,label` rows, as `evaluate --labels` reads them) and `masks.npz` (the marked square's
    visible pixels per frame, keyed by clip name). Files already there of other names are kept."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"the number of clips must be a positive whole number, got {count!r}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder: name a folder for the clips")
    folder.mkdir(parents=True, exist_ok=True)
    videos, labels, masks = [], [], {}
    for n, index in enumerate(range(start, start + count)):
        clip = render_clip(seed, index)
        videos.append(write_video(clip.frames, folder / f"{clip.name}.mp4"))
        labels.append(clip.label)
        masks[clip.name] = clip.mask
        if progress is not None:
            progress(n + 1, count)
    labels_csv = folder / LABELS_CSV
    with labels_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((v.name, lab) for v, lab in zip(videos, labels))
    masks_npz = folder / MASKS_NPZ
    np.savez_compressed(masks_npz, **masks)
    return SyntheticSet(folder, videos, labels_csv, masks_npz, labels)
