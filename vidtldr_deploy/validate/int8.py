"""Validation of a low-precision (INT8 Q/DQ) graph (docs/design.md, "INT8"): its outputs against
the PyTorch fp32 merged model with INT8 tolerances, and how many merge decisions it changed.

Run, then compare, like every validation (validate/run.py, validate/compare.py): the runtime's
runner and PyTorch's reference runner both return the hidden state entering each merge
(`merge_inputs=True`, runtime/base.py): the graph's runner exposes each merge island's incoming
tensor (fp32 by construction: no Q/DQ on an island's path, see export.merge_islands), PyTorch's
captures it with a hook on each MergeStep. The merge-decision comparator
(validate/decisions.py) turns both into (source -> destination) pairs and counts the agreement. A
new runtime's low-precision check is its runner with `merge_inputs=True` passed to
`validate_low_precision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.validate.compare import compare_merge_decisions, compare_validation
from vidtldr_deploy.validate.decisions import LayerAgreement, overall_agreement
from vidtldr_deploy.validate.inputs import InputBatches
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.run import ValidationRuns, inputs_description, run_validation
from vidtldr_deploy.validate.tolerances import DEFAULT_TOLERANCES, Tolerances

# Proposed INT8 bounds on the gating outputs (pooled / logits) against PyTorch fp32 merged. Measured
# (pooled, worst clip): tiny demo UMT 0.25x2, 8 clips: cosine 0.9958, rel_l2 4.9e-2, max_abs 0.23,
# mean_abs 2.7e-2, decision agreement 95%; UMT-B 4 frames 300,100 (random weights): see
# benchmarks/bench_int8.py (cosine ~0.9996). A 64-wide tiny model is the noisiest case (fewer
# channels average the rounding), so the bounds sit ~2x outside it; they are ~5-10x fp16's.
INT8_TOLERANCES = DEFAULT_TOLERANCES["int8"]  # fmt: skip
# Below this fraction of agreeing (source, destination) merge pairs the INT8 graph no longer
# merges what fp32 merges (tiny demo: 95%; UMT-B: see the benchmark).
MIN_DECISION_AGREEMENT = 0.9
# The same bound for OpenVINO bf16 / fp16 (transformer in low precision), measured with random
# weights (benchmarks/bench_openvino.py): UMT-B 4 frames 300,100 87%, 12 frames msrvtt 74%, with or
# without the islands kept f32; tiny demo 93-95%. bf16 rounding of the hidden state flips near-ties
# far more often than INT8 with its near-merge layers kept fp32 does (96.8-99.75%).
MIN_BF16_AGREEMENT = 0.7


def min_agreement_for(precision: str) -> float:
    """The least merge-decision agreement a validation at `precision` accepts."""
    return MIN_BF16_AGREEMENT if precision in ("bf16", "fp16") else MIN_DECISION_AGREEMENT


@dataclass
class Int8Validation:
    validation: ValidationResult
    decisions: list[LayerAgreement]
    agreement: float
    min_agreement: float
    graph: str
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.validation.passed and self.agreement >= self.min_agreement

    def to_dict(self) -> dict:
        return {
            "kind": f"{self.validation.precision}_validation",
            "graph": self.graph,
            "validation": self.validation.to_dict(),
            "merge_decisions": {
                "method": "plan_merge on the hidden state entering each merge island (graph: "
                          "exposed as an extra output; PyTorch fp32: hook), pairs by token id",
                "layers": [a.to_dict() for a in self.decisions],
                "agreement": self.agreement,
                "min_agreement": self.min_agreement,
            },
            "notes": list(self.notes),
            "passed": self.passed,
        }  # fmt: skip


def validate_low_precision(
    runner: Runner,
    target: str,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: InputBatches | list,
    precision: str = "int8",
    tolerances: Tolerances = INT8_TOLERANCES,
    min_agreement: float = MIN_DECISION_AGREEMENT,
    inputs_label: str = "",
) -> Int8Validation:
    """`runner` (active, returning its merge inputs) against the PyTorch fp32 merged model."""
    runs = run_validation(runner, loaded, schedule, inputs, merge_inputs=True)
    validation = compare_validation(
        runs, target=target, loaded=loaded, schedule=schedule, tolerances=tolerances,
        precision=precision, inputs=inputs_description(inputs, inputs_label),
    )  # fmt: skip
    return judge_merge_decisions(runs, validation, schedule, min_agreement)


def judge_merge_decisions(
    runs: ValidationRuns,
    validation: ValidationResult,
    schedule: MergeSchedule,
    min_agreement: float = MIN_DECISION_AGREEMENT,
) -> Int8Validation:
    """The outputs' verdict joined with the merge decisions' agreement (runs with merge inputs)."""
    decisions = compare_merge_decisions(runs.reference, runs.runtime, schedule)
    return Int8Validation(
        validation, decisions, overall_agreement(decisions), min_agreement, validation.target
    )


def validate_int8(
    onnx_path: str | Path,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: InputBatches | list,
    tolerances: Tolerances = INT8_TOLERANCES,
    min_agreement: float = MIN_DECISION_AGREEMENT,
    inputs_label: str = "",
    device: str = "cpu",
) -> Int8Validation:
    """The INT8 graph at `onnx_path` in ONNX Runtime against the PyTorch fp32 merged model."""
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path, device, merge_inputs=True) as runner:
        return validate_low_precision(
            runner, str(onnx_path), loaded, schedule, inputs, "int8", tolerances, min_agreement,
            inputs_label,
        )  # fmt: skip
