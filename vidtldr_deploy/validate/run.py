"""Validation, step one (docs/design.md, "Validation"): run. Every runtime arrives as a Runner
(runtime/base.py), and so does PyTorch, merged (the reference) and unmerged (the cost of merging);
each produces its outputs for the same clip batches. Judging them is step two (validate/compare.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.runtime.registry import RunnerOptions, ScheduledModel, open_runner
from vidtldr_deploy.validate.inputs import InputBatches


@dataclass(frozen=True)
class RunResult:
    """One runner's outputs by name, every batch concatenated in input order, padding rows left
    out (a remainder batch is padded to the graph's static batch size; padding is never part of a
    metric)."""

    runner: str
    outputs: dict[str, np.ndarray]
    seconds: float


@dataclass(frozen=True)
class ValidationRuns:
    """What a validation compares: the runtime under test, PyTorch with the same schedule (the
    reference) and PyTorch unmerged (beside them: the cost of merging)."""

    runtime: RunResult
    reference: RunResult
    unmerged: RunResult


def batches_of(inputs: InputBatches | list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The clip batches and how many rows of each are real clips."""
    batches = list(inputs)
    valid = inputs.valid if isinstance(inputs, InputBatches) else [len(v) for v in batches]
    return batches, valid


def run_batches(runner: Runner, inputs: InputBatches | list[np.ndarray]) -> RunResult:
    """Every batch through an active runner."""
    batches, valid = batches_of(inputs)
    t0 = time.perf_counter()
    got = [runner.run(v) for v in batches]
    seconds = time.perf_counter() - t0
    outputs = {k: np.concatenate([b[k][:n] for b, n in zip(got, valid)]) for k in got[0]}
    return RunResult(runner.name, outputs, seconds)


def reference_runners(
    loaded: LoadedModel, schedule: MergeSchedule, merge_inputs: bool = False
) -> tuple[Runner, Runner]:
    """PyTorch merged with `schedule` (the reference; with the merge inputs where the comparison
    needs them) and unmerged, both running the loaded model in place."""
    rs = tuple(schedule.rs)
    merged = open_runner("torch", ScheduledModel(loaded.model, rs),
                         RunnerOptions(copy_model=False, merge_inputs=merge_inputs))  # fmt: skip
    unmerged = open_runner(
        "torch", ScheduledModel(loaded.model, (0,) * len(rs)), RunnerOptions(copy_model=False)
    )
    return merged, unmerged


def run_validation(
    runner: Runner,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: InputBatches | list[np.ndarray],
    merge_inputs: bool = False,
) -> ValidationRuns:
    """Run `inputs` through the (active) runner and through PyTorch merged and unmerged.
    merge_inputs: the runner returns the merge inputs, so PyTorch's are captured too."""
    merged, unmerged = reference_runners(loaded, schedule, merge_inputs)
    runtime = run_batches(runner, inputs)
    with merged, unmerged:
        return ValidationRuns(runtime, run_batches(merged, inputs), run_batches(unmerged, inputs))


def inputs_description(inputs: InputBatches | list[np.ndarray], label: str = "") -> str:
    return label or getattr(inputs, "label", "") or f"{len(inputs)} seeded random clip batches"
