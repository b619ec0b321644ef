"""Validation, step two (docs/design.md, "Validation"): compare. Comparators take what the runners
produced (validate/run.py) and judge it; none of them runs anything.

- compare_to_reference: each output of the runtime against PyTorch with the same schedule, under
  the tolerances (validate/metrics.py); the verdict.
- merge_cost: PyTorch unmerged against PyTorch merged, reported and never a failure.
- compare_merge_decisions: the merge choices the runtime's merge inputs lead to against those of
  PyTorch's (validate/decisions.py); for low-precision runtimes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import MERGE_INPUT_PREFIX, merge_inputs_of
from vidtldr_deploy.validate.decisions import LayerAgreement, decision_agreement, merge_decisions
from vidtldr_deploy.validate.metrics import OutputComparison, compare_outputs
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.run import RunResult, ValidationRuns
from vidtldr_deploy.validate.tolerances import Tolerances

# Once the model merges, the token output is compared row by row but does not decide the verdict
# (unless strict): when two runtimes merge a different token at a near-tie, every kept token after
# it shifts by one row, so a row-aligned comparison reports a large error for a correct graph.
# The pooled vector and logits carry the verdict; they move only by the flip's real effect.
TOKEN_OUTPUT = "tokens"


def model_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's own outputs, without the merge inputs a runner may return beside them."""
    return {k: v for k, v in outputs.items() if not k.startswith(MERGE_INPUT_PREFIX)}


def compare_to_reference(
    reference: RunResult,
    runtime: RunResult,
    tolerances: Tolerances,
    schedule: MergeSchedule,
    strict_tokens: bool = False,
) -> list[OutputComparison]:
    results = compare_outputs(model_outputs(reference.outputs), runtime.outputs, tolerances)
    if schedule.merges and not strict_tokens:
        for result in results:
            result.gating = result.name != TOKEN_OUTPUT
    return results


def merge_cost(unmerged: RunResult, merged: RunResult) -> list[OutputComparison]:
    """How far merging moves each output whose shape merging keeps (pooled, logits)."""
    base = model_outputs(unmerged.outputs)
    comparable = {k: v for k, v in base.items() if v.shape == merged.outputs[k].shape}
    return compare_outputs(comparable, {k: merged.outputs[k] for k in comparable}, None)


def compare_merge_decisions(
    reference: RunResult, runtime: RunResult, schedule: MergeSchedule
) -> list[LayerAgreement]:
    """Per merging layer: how much of the reference's merge choice the runtime repeats, from the
    hidden states entering each merge (both runners ran with merge_inputs=True)."""
    layers = [(i, r) for i, r in enumerate(schedule.rs) if r > 0]
    ref = merge_decisions(merge_inputs_of(reference.outputs), layers)
    got = merge_decisions(merge_inputs_of(runtime.outputs), layers)
    return decision_agreement([ref], [got])


def compare_validation(
    runs: ValidationRuns,
    *,
    target: str,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    tolerances: Tolerances,
    precision: str,
    inputs: str,
    strict_tokens: bool = False,
) -> ValidationResult:
    """The verdict on a validation's runs, and the report fields beside it."""
    return ValidationResult(
        target=target,
        runtime=runs.runtime.runner,
        arch=loaded.name,
        source=loaded.label,
        schedule=schedule.to_dict(),
        precision=precision,
        tolerances=tolerances,
        inputs=inputs,
        outputs=compare_to_reference(
            runs.reference, runs.runtime, tolerances, schedule, strict_tokens
        ),
        merge_cost=merge_cost(runs.unmerged, runs.reference),
        seconds={
            "runtime": runs.runtime.seconds,
            "pytorch": runs.reference.seconds + runs.unmerged.seconds,
        },
    )
