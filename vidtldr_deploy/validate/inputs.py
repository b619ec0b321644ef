"""Clip batches for validation and profiling: seeded random clips, or real clips from files (videos,
folders of videos, .npy/.npz arrays) decoded and preprocessed the way the model's family was
trained (vidtldr_deploy/clips), batched at the graph's static batch size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidtldr_deploy.errors import InputError


@dataclass
class InputBatches:
    """Batches of the graph's static shape; `valid[i]` rows of batch i are real clips, the rest is
    padding that every metric leaves out."""

    batches: list[np.ndarray]
    valid: list[int]
    label: str
    names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.batches[i]

    @property
    def clip_count(self) -> int:
        return sum(self.valid)

    def real_clips(self) -> np.ndarray:
        """Every real clip, (N, 3, T, H, W), padding rows left out."""
        return np.concatenate([b[:n] for b, n in zip(self.batches, self.valid)])


def random_batches(shape: tuple[int, ...], seed: int = 0, count: int = 2) -> InputBatches:
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randn(shape, generator=gen).numpy() for _ in range(count)]
    label = f"{count} seeded random clip batch{'es' if count != 1 else ''} (seed {seed})"
    return InputBatches(batches, [shape[0]] * count, label)


def clip_stream(
    shape: tuple[int, ...],
    arch: str,
    paths: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    limits=None,
):
    """Real clips from `paths` as a ClipStream: preprocessed with `arch`'s family recipe at the
    graph's image size and frame count, decoded as read, in batches of shape[0]; `limits`
    (clips.DecodeLimits) bound each video's decoding."""
    from vidtldr_deploy.clips import ClipStream, recipe_for

    batch, frames, side = shape[0], shape[2], shape[-1]
    recipe = recipe_for(arch, image_size=side)
    return ClipStream(
        paths, recipe, frames, batch, cache_dir=cache_dir, skip_bad=skip_bad, progress=progress,
        limit=limit, limits=limits,
    )  # fmt: skip


def clip_batches(
    shape: tuple[int, ...], arch: str, paths: Sequence[str | Path], **options
) -> InputBatches:
    """Every clip of clip_stream(shape, arch, paths, **options) held in memory, in batches of the
    graph's static batch size (validation and calibration read a few; evaluate streams them)."""
    stream = clip_stream(shape, arch, paths, **options)
    batches = list(stream)
    return InputBatches(
        [b.video for b in batches], [b.valid for b in batches], stream.label,
        list(stream.names), stream.warnings(),
    )  # fmt: skip


def make_inputs(
    shape: tuple[int, ...],
    seed: int = 0,
    count: int = 2,
    path: str | Path | Sequence[str | Path] | None = None,
    arch: str = "umt-tiny",
    *,
    skip_bad: bool = False,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
) -> InputBatches:
    """Seeded random clips of `shape`, or the clips the files at `path` hold (see clip_batches)."""
    if not path:
        return random_batches(shape, seed, count)
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    for p in paths:
        if not Path(p).exists():
            raise InputError(f"input file {p} does not exist")
    return clip_batches(shape, arch, paths, skip_bad=skip_bad, cache_dir=cache_dir, limit=limit)


def check_inputs_exist(graph: str | Path, inputs: Sequence[str | Path] | None) -> None:
    """Before any work: the graph and every --inputs path exist (all problems at once)."""
    from vidtldr_deploy.errors import ProblemCollector

    with ProblemCollector() as problems:
        if not Path(graph).is_file():
            what = "is a directory" if Path(graph).is_dir() else "does not exist"
            problems.add(f"graph {graph} {what}: give an .onnx file written by vidtldr export")
        for p in inputs or []:
            if not Path(p).exists():
                problems.add(f"--inputs {p} does not exist: give video files, folders of them, "
                             f"or .npy/.npz arrays")  # fmt: skip
