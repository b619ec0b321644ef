"""The entry point: user paths -> batches of preprocessed clips, with what was skipped and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidtldr_deploy.clips.batching import ClipBatch, make_batches
from vidtldr_deploy.clips.cache import cache_key, file_sha256, load_cached, store_cached
from vidtldr_deploy.clips.decode import sample_frames
from vidtldr_deploy.clips.limits import DecodeLimits
from vidtldr_deploy.clips.preprocess import preprocess
from vidtldr_deploy.clips.recipe import ClipRecipe, recipe_for
from vidtldr_deploy.clips.sources import ClipSource, array_clips, check_clip_values, expand_paths
from vidtldr_deploy.errors import VidTLDRError

# progress(done, total, name): called after each source, done counting from 1.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SkippedClip:
    name: str
    reason: str


@dataclass
class ClipSet:
    """Batches ready for a graph, the real clips' names in order, and the sources skipped."""

    batches: list[ClipBatch]
    names: list[str]
    skipped: list[SkippedClip] = field(default_factory=list)
    label: str = ""
    cache_hits: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. cache entries that could not be written

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def warnings(self) -> list[str]:
        return [f"skipped {s.name}: {s.reason}" for s in self.skipped] + list(self.notes)


def load_clips(
    paths: Iterable[str | Path],
    recipe: ClipRecipe | str,
    frames: int,
    batch: int,
    *,
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
    pad: str = "repeat",
    limits: DecodeLimits | None = None,
) -> ClipSet:
    """Load every clip `paths` name (videos, folders of videos, .npy/.npz clip arrays) as float32
    (3, frames, S, S) clips, S = recipe.image_size, batched `batch` at a time.

    A video that cannot be opened or decoded, has no video stream, or is shorter than `frames`,
    and an array of the wrong shape, raise a VidTLDRError naming it; with skip_bad they are
    recorded in ClipSet.skipped instead. Path errors (missing path, unsupported suffix, empty
    folder) always raise: they are mistakes in the command, not in the data. `limits` bound the
    frame size and decoded bytes of each video (default: DecodeLimits.resolve()). The cache is an
    optimisation: an entry that cannot be written is a note, not a failure."""
    if isinstance(recipe, str):
        recipe = recipe_for(recipe)
    if frames < 1:
        raise VidTLDRError(f"frames per clip must be positive, got {frames}")
    limits = limits or DecodeLimits.resolve()
    path_list = [Path(p) for p in paths]
    sources = expand_paths(path_list)
    shape = (3, frames, recipe.image_size, recipe.image_size)
    clips: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[SkippedClip] = []
    hits = 0
    notes: list[str] = []
    for done, source in enumerate(sources, 1):
        try:
            loaded, hit = _load_source(source, recipe, frames, shape, cache_dir, batch, limits,
                                       notes)  # fmt: skip
        except VidTLDRError as err:
            if not skip_bad:
                raise
            skipped.append(SkippedClip(source.name, str(err)))
        else:
            hits += hit
            clips.extend(loaded)
            names.extend(_clip_names(source, len(loaded)))
        if progress is not None:
            progress(done, len(sources), source.name)
    if not clips:
        reasons = "; ".join(s.reason for s in skipped[:3])
        raise VidTLDRError(f"no usable clips in {', '.join(map(str, path_list))}: {reasons}")
    label = _label(path_list, len(clips), len(skipped), recipe, frames)
    return ClipSet(make_batches(clips, names, batch, pad), names, skipped, label, hits, notes)


def _load_source(
    source: ClipSource,
    recipe: ClipRecipe,
    frames: int,
    shape: tuple[int, int, int, int],
    cache_dir: str | Path | None,
    batch: int | None = None,
    limits: DecodeLimits | None = None,
    notes: list[str] | None = None,
) -> tuple[list[np.ndarray], int]:
    """The clips of one source, and 1 if it came from the cache."""
    if source.kind == "array":
        return array_clips(source, shape, batch), 0
    if cache_dir is None:
        return [load_video_clip(source.path, recipe, frames, limits)], 0
    key = cache_key(file_sha256(source.path), recipe, frames)
    cached = load_cached(cache_dir, key)
    if cached is not None and cached.shape == shape and np.isfinite(cached).all():
        return [cached], 1  # a damaged entry (NaN included) is a miss, decoded and rewritten
    clip = load_video_clip(source.path, recipe, frames, limits)
    check_clip_values(clip[None], source.name)
    try:
        store_cached(cache_dir, key, clip)
    except (VidTLDRError, OSError) as err:
        if notes is not None:
            notes.append(f"clip cache not written for {source.name} ({err}); the run goes on")
    return [clip], 0


def load_video_clip(
    path: str | Path, recipe: ClipRecipe, frames: int, limits: DecodeLimits | None = None
) -> np.ndarray:
    """One video file -> float32 (3, frames, S, S), sampled and preprocessed per the recipe."""
    raw, _ = sample_frames(path, recipe.sampling, frames, limits)
    return preprocess(raw, recipe)


def decode_clip(
    video: bytes | str | Path,
    recipe: ClipRecipe | str,
    frames: int,
    limits: DecodeLimits | None = None,
) -> np.ndarray:
    """Encoded video bytes (as a client sends them to a server) or a path -> float32
    (3, frames, S, S). `recipe` may be a ClipRecipe, a family or an architecture name; `limits`
    hold a client's bytes to the same frame-size and decoded-bytes limits as a file's."""
    import tempfile

    if isinstance(recipe, str):
        recipe = recipe_for(recipe)
    if not isinstance(video, (bytes, bytearray, memoryview)):
        return load_video_clip(video, recipe, frames, limits)
    # FFmpeg probes containers by seeking; a named temporary file gives it a seekable input for
    # every container, as a file on disk does.
    with tempfile.NamedTemporaryFile(suffix=".video") as tmp:
        tmp.write(bytes(video))
        tmp.flush()
        return load_video_clip(tmp.name, recipe, frames, limits)


def _clip_names(source: ClipSource, count: int) -> list[str]:
    if source.kind == "video":
        return [source.name]
    return [f"{source.name}[{i}]" for i in range(count)]


def _label(paths: list[Path], count: int, skipped: int, recipe: ClipRecipe, frames: int) -> str:
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} paths"
    text = f"{count} clip{'s' * (count != 1)} from {where}, {recipe.describe()}, T={frames}"
    return text + (f", {skipped} skipped" if skipped else "")
