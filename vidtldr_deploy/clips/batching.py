"""Clips -> batches of the graph's static batch size, with the padding rows marked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidtldr_deploy.errors import InputError

PAD_MODES = ("repeat", "zeros")


@dataclass(frozen=True)
class ClipBatch:
    """video: float32 (B, 3, T, H, W); names: the clips of the first `valid` rows; the rows from
    `valid` on are padding, to be left out of every metric."""

    video: np.ndarray
    names: list[str]
    valid: int

    @property
    def size(self) -> int:
        return int(self.video.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """bool (B,): True for real rows."""
        return np.arange(self.size) < self.valid

    def real(self, array: np.ndarray) -> np.ndarray:
        """The real rows of a per-row output of this batch (its first axis is B)."""
        return array[: self.valid]


def make_batches(
    clips: list[np.ndarray], names: list[str], batch: int, pad: str = "repeat"
) -> list[ClipBatch]:
    """Consecutive groups of `batch` clips; the last group is filled up with copies of its last
    clip ("repeat": realistic inputs, so padding cannot trip numerics) or zeros."""
    if batch < 1:
        raise InputError(f"batch size must be positive, got {batch}")
    if pad not in PAD_MODES:
        raise InputError(f"unknown padding {pad!r}: use one of {', '.join(PAD_MODES)}")
    if len(clips) != len(names):
        raise ValueError(f"{len(clips)} clips but {len(names)} names")
    batches = []
    for start in range(0, len(clips), batch):
        rows = clips[start : start + batch]
        valid = len(rows)
        filler = rows[-1] if pad == "repeat" else np.zeros_like(rows[-1])
        video = np.stack(rows + [filler] * (batch - valid))
        batches.append(ClipBatch(video, list(names[start : start + valid]), valid))
    return batches
