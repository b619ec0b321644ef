"""The one interface every runtime implements (Polygraphy-style runners).

Validation, profiling, evaluation and serving checks all drive runtimes through `Runner`, so a new
runtime is one new module, never new branches in each of those. A runner is a context manager:
constructing it only records what to run; `with OnnxRuntimeRunner(path) as runner:` activates it
(opens the session, loads the engine) and leaving the block releases it. Runners produce outputs;
what they are compared with and how is the comparators' job (validate/compare.py).

A runner asked for the merge inputs (`merge_inputs=True` where it offers them) also returns the
hidden state entering each merging layer, as `merge_input.0`, `merge_input.1`, ... in layer order:
what the merge-decision comparator needs to tell whether a low-precision runtime still merges the
tokens the fp32 model merges.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

MERGE_INPUT_PREFIX = "merge_input."


def merge_input_name(index: int) -> str:
    """The output name of the hidden state entering the `index`-th merging layer (0-based, in layer
    order, counting only layers that merge)."""
    return f"{MERGE_INPUT_PREFIX}{index}"


def merge_inputs_of(outputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The merge inputs among a runner's outputs, in layer order."""
    found = {int(k[len(MERGE_INPUT_PREFIX) :]): v for k, v in outputs.items()
             if k.startswith(MERGE_INPUT_PREFIX)}  # fmt: skip
    return [found[i] for i in sorted(found)]


class Runner(abc.ABC):
    """Runs one static-shape model: a (B, 3, T, H, W) float32 clip batch in, outputs by name."""

    name: str = "runner"
    input_shape: tuple[int, ...] = ()
    output_names: list[str]

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def activate(self) -> None:  # noqa: B027 - a runner with nothing to open activates as it is
        """Open what the runner needs (a session, an engine, a model copy); called by `__enter__`.
        Every check that needs the runtime itself happens here, not in the constructor."""

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def inactive(self) -> RuntimeError:
        """The error for a runner used outside its `with` block."""
        return RuntimeError(f"the {self.name} runner is not active: use it inside `with runner:`")

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
