"""The entry point: user paths -> batches of preprocessed clips, with what was skipped and why."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
from vidtldr_deploy.errors import InputError, VidTLDRError

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


class ClipStream:
    """The clips `paths` name (videos, folders of videos, .npy/.npz clip arrays) as float32
    (3, frames, S, S) clips, S = recipe.image_size, decoded as they are iterated and yielded as
    ClipBatches of `batch` clips: only one batch is held at a time, so memory does not grow with
    the number of clips. `names`, `skipped`, `cache_hits` and `label` fill in as the stream is
    read; each iteration starts them afresh.

    A video that cannot be opened or decoded, has no video stream, or is shorter than `frames`,
    and an array of the wrong shape, raise a VidTLDRError naming it; with skip_bad they are
    recorded in `skipped` instead. Path errors (missing path, unsupported suffix, empty folder)
    raise here, before any decoding: they are mistakes in the command, not in the data.
    `limit` keeps the first `limit` clips. `limits` bound the frame size and decoded bytes of
    each video (default: DecodeLimits.resolve()). The cache is an optimisation: an entry that
    cannot be written is a note (in `warnings()`), not a failure."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        recipe: ClipRecipe | str,
        frames: int,
        batch: int,
        *,
        cache_dir: str | Path | None = None,
        skip_bad: bool = False,
        progress: Progress | None = None,
        pad: str = "repeat",
        limit: int | None = None,
        limits: DecodeLimits | None = None,
    ):
        if isinstance(recipe, str):
            recipe = recipe_for(recipe)
        if frames < 1:
            raise InputError(f"frames per clip must be positive, got {frames}")
        if limit is not None and limit < 1:
            raise InputError(f"a clip limit must be positive, got {limit}")
        self.paths = [Path(p) for p in paths]
        self.sources = expand_paths(self.paths)
        self.recipe, self.frames, self.batch, self.pad, self.limit = (
            recipe,
            frames,
            batch,
            pad,
            limit,
        )
        self.cache_dir, self.skip_bad, self.progress = cache_dir, skip_bad, progress
        self.limits = limits or DecodeLimits.resolve()
        self.shape = (3, frames, recipe.image_size, recipe.image_size)
        self.names: list[str] = []
        self.skipped: list[SkippedClip] = []
        self.notes: list[str] = []
        self.cache_hits = 0

    def __iter__(self) -> Iterator[ClipBatch]:
        self.names.clear()
        self.skipped.clear()
        self.notes.clear()
        self.cache_hits = 0
        pending: list[np.ndarray] = []
        pending_names: list[str] = []
        for done, source in enumerate(self.sources, 1):
            if self.limit is not None and len(self.names) >= self.limit:
                break
            try:
                loaded, hit = _load_source(source, self.recipe, self.frames, self.shape,
                                           self.cache_dir, self.batch, self.limits, self.notes)  # fmt: skip
            except VidTLDRError as err:
                if not self.skip_bad:
                    raise
                self.skipped.append(SkippedClip(source.name, str(err)))
            else:
                if self.limit is not None:
                    loaded = loaded[: self.limit - len(self.names)]
                self.cache_hits += hit
                new_names = _clip_names(source, len(loaded))
                self.names.extend(new_names)
                pending.extend(loaded)
                pending_names.extend(new_names)
                del loaded
                while len(pending) >= self.batch:
                    yield from make_batches(
                        pending[: self.batch], pending_names[: self.batch], self.batch, self.pad
                    )
                    del pending[: self.batch], pending_names[: self.batch]
            if self.progress is not None:
                self.progress(done, len(self.sources), source.name)
        if pending:
            yield from make_batches(pending, pending_names, self.batch, self.pad)
        if not self.names:
            reasons = "; ".join(s.reason for s in self.skipped[:3])
            where = ", ".join(map(str, self.paths))
            raise InputError(f"no usable clips in {where}: {reasons}")

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def label(self) -> str:
        return _label(self.paths, len(self.names), len(self.skipped), self.recipe, self.frames)

    def warnings(self) -> list[str]:
        return [f"skipped {s.name}: {s.reason}" for s in self.skipped] + list(self.notes)


def load_clips(
    paths: Iterable[str | Path], recipe: ClipRecipe | str, frames: int, batch: int, **options
) -> ClipSet:
    """Every clip of a ClipStream (same arguments, `options` its keywords, same errors), held in
    memory: for the few batches validation and calibration use; evaluate streams them instead."""
    stream = ClipStream(paths, recipe, frames, batch, **options)
    batches = list(stream)
    return ClipSet(batches, stream.names, stream.skipped, stream.label, stream.cache_hits,
                   list(stream.notes))  # fmt: skip


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
