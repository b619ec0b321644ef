"""Validation (docs/design.md, "Validation"): a runtime's outputs against the PyTorch model with the
same schedule, with the unmerged model's distance beside them as the cost of merging (reported,
never a failure). Every runtime arrives as a Runner (runtime/base.py)."""

from __future__ import annotations

import time

import numpy as np

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.runtime.pytorch import TorchRunner
from vidtldr_deploy.validate.inputs import InputBatches
from vidtldr_deploy.validate.metrics import OutputComparison, compare_outputs
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.tolerances import Tolerances


def _real_rows(batches: list[dict[str, np.ndarray]], valid: list[int]) -> dict[str, np.ndarray]:
    """Outputs of every batch stacked, without the padding rows (a remainder batch is padded to the
    graph's static batch size; padding is never part of a metric)."""
    return {k: np.concatenate([b[k][:n] for b, n in zip(batches, valid)]) for k in batches[0]}


def torch_outputs(model, rs: list[int], video: np.ndarray) -> dict[str, np.ndarray]:
    """The PyTorch model's outputs with schedule `rs` (reference maths), the model left as it was."""
    return TorchRunner(model, rs, copy_model=False).run(video)


def validate_runner(
    runner: Runner,
    target: str,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: InputBatches | list[np.ndarray],
    tolerances: Tolerances,
    precision: str = "fp32",
    inputs_label: str = "",
    strict_tokens: bool = False,
    keep: dict | None = None,
) -> ValidationResult:
    """Run `inputs` through the runner and through PyTorch (merged and unmerged) and compare.

    Once the model merges, `tokens` is compared row by row but does not decide the verdict unless
    `strict_tokens`: when two runtimes merge a different token at a near-tie, every kept token
    after it shifts by one row, so a row-aligned comparison reports a large error for a correct
    graph. The pooled vector and logits carry the verdict; they move only by the flip's real effect.

    `keep`, when given, receives the outputs by name, batches concatenated in input order:
    keep["runtime"] (the runner's) and keep["reference"] (PyTorch, same schedule), for
    `--save-outputs`.
    """
    t0 = time.perf_counter()
    batches = list(inputs)
    valid = inputs.valid if isinstance(inputs, InputBatches) else [len(v) for v in batches]
    got = _real_rows([runner.run(v) for v in batches], valid)
    t1 = time.perf_counter()
    merged = _real_rows([torch_outputs(loaded.model, schedule.rs, v) for v in batches], valid)
    baseline = _real_rows(
        [torch_outputs(loaded.model, [0] * len(schedule.rs), v) for v in batches], valid
    )
    t2 = time.perf_counter()
    if keep is not None:
        keep.update(runtime=got, reference=merged)
    # Token outputs differ in length once merged; the pooled/logits outputs carry the comparison.
    comparable = {k: v for k, v in baseline.items() if v.shape == merged[k].shape}
    return ValidationResult(
        target=target,
        runtime=runner.name,
        arch=loaded.name,
        source=loaded.label,
        schedule=schedule.to_dict(),
        precision=precision,
        tolerances=tolerances,
        inputs=inputs_label
        or getattr(inputs, "label", "")
        or f"{len(batches)} seeded random clip batches",
        outputs=_mark_gating(compare_outputs(merged, got, tolerances), schedule, strict_tokens),
        merge_cost=compare_outputs(comparable, {k: merged[k] for k in comparable}, None),
        seconds={"runtime": t1 - t0, "pytorch": t2 - t1},
    )


TOKEN_OUTPUT = "tokens"


def _mark_gating(
    results: list[OutputComparison], schedule: MergeSchedule, strict_tokens: bool
) -> list[OutputComparison]:
    if schedule.merges and not strict_tokens:
        for result in results:
            result.gating = result.name != TOKEN_OUTPUT
    return results
