"""What an evaluation runs: the PyTorch model under a schedule, or an exported graph through any
active Runner (runtime/base.py: ONNX Runtime, TensorRT), whose schedule is baked in.

Both give the same thing: the model's primary output for a batch of clips, as a float64-ready numpy
array: `pooled` for encoders, `logits` for classifiers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.export.metadata import recorded_schedule
from vidtldr_deploy.models.vit import MergeViT
from vidtldr_deploy.runtime.base import Runner


def primary_output(model: MergeViT) -> str:
    """The output drift is measured on: logits of a classifier, the pooled vector of an encoder."""
    return "logits" if model.head is not None else "pooled"


def schedule_string(rs: Sequence[int]) -> str:
    """Per-layer counts as a `--schedule` string ("600,200,100", trailing zeros trimmed; "none")."""
    rs = [int(r) for r in rs]
    while rs and rs[-1] == 0:
        rs.pop()
    return ",".join(map(str, rs)) if rs else "none"


@dataclass(frozen=True)
class MethodSchedule:
    """A schedule run on the PyTorch model with a merge method other than vid-TLDR (a plain
    schedule string means vid-TLDR)."""

    spec: str
    method: MergeMethod = MergeMethod.VIDTLDR

    @property
    def label(self) -> str:
        return (
            self.spec
            if self.method is MergeMethod.VIDTLDR
            else f"{self.spec} ({self.method.value})"
        )


@dataclass(frozen=True)
class GraphTarget:
    """An exported graph with the per-layer r it was exported with (`rs`, resolved counts)."""

    runner: Runner
    rs: tuple[int, ...]
    label: str = "graph"
    output: str | None = None  # None: the reference model's primary output
    batch: int | None = None  # the graph's static batch; None: the runner's input_shape[0], if any
    method: str = MergeMethod.VIDTLDR.value  # the merge method the graph was exported with

    @property
    def spec(self) -> str:
        return schedule_string(self.rs)


def rs_from_metadata(metadata: Mapping[str, str]) -> tuple[int, ...]:
    """Resolved per-layer r of an exported graph, from its `vidtldr.*` metadata (read_metadata)."""
    schedule = recorded_schedule(dict(metadata), "the graph")
    return tuple(row["r"] for row in schedule.get("layers", []))


def iter_batches(clips: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """One (N, 3, T, H, W) array, or an iterable of them, as float32 batches."""
    if isinstance(clips, np.ndarray):
        clips = [clips]
    for batch in clips:
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 5:
            raise InputError(f"clips must be (N, 3, T, H, W), got shape {batch.shape}")
        yield batch


def runner_outputs(target: GraphTarget, video: np.ndarray, output: str) -> np.ndarray:
    """Run a static-batch graph over any number of clips: chunks of its batch, the last one padded
    with zeros (whose outputs are dropped)."""
    batch = target.batch
    shape = getattr(target.runner, "input_shape", None)
    if batch is None and shape and isinstance(shape[0], int):
        batch = shape[0]
    batch = batch or len(video)
    parts = []
    for start in range(0, len(video), batch):
        chunk = video[start : start + batch]
        n = len(chunk)
        if n < batch:
            pad = np.zeros((batch - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        result = target.runner.run(chunk)
        if output not in result:
            raise InputError(
                f"{target.label} has no output {output!r} (outputs: {', '.join(result)})"
            )
        parts.append(np.asarray(result[output])[:n])
    return np.concatenate(parts)
