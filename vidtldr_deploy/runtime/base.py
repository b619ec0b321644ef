"""The one interface every runtime implements (Polygraphy-style runners).

Validation, profiling, evaluation and serving checks all drive runtimes through `Runner`, so a new
runtime is one new module, never new branches in each of those. A runner is a context manager:
`with OnnxRuntimeRunner(path) as runner: runner.run(video)`; leaving the block releases it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class Runner(abc.ABC):
    """Runs one static-shape model: a (B, 3, T, H, W) float32 clip batch in, outputs by name."""

    name: str = "runner"
    input_shape: tuple[int, ...] = ()
    output_names: list[str]

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - most runners hold nothing that needs releasing
        """Release what the runner holds (sessions, device buffers)."""

    @abc.abstractmethod
    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of one batch, as float32 host arrays."""

    def timed_step(self, video: np.ndarray) -> Callable[[], object]:
        """A call that runs one batch to completion with the input already staged where the
        runtime wants it, for the timing loop (profile/timing.py). By default, `run`."""
        return lambda: self.run(video)

    def before_timed(self) -> None:  # noqa: B027
        """Called before each timed step, outside the timed window (e.g. reset peak memory)."""

    def after_timed(self) -> None:  # noqa: B027
        """Called after each timed step, outside the timed window."""

    def peak_memory_mb(self) -> float | None:
        """Peak device memory over the timed steps, where the runtime tells it."""
        return None

    def breakdown(
        self, video: np.ndarray, schedule_rows: list[dict], iterations: int, workdir: Path
    ) -> dict | None:
        """Per-part times from a separate instrumented pass (runtime/breakdown.py), or None where
        the runtime offers no profiler. Never called inside the timed loop."""
        return None
