"""Validation in OpenVINO: an .onnx graph or an IR against the PyTorch fp32 model. At fp32 like any
runtime; at bf16 / fp16, and for an INT8 Q/DQ graph, with merge-decision agreement beside the
outputs (validate/int8.py), since reduced precision can change which tokens merge."""

from __future__ import annotations

from pathlib import Path

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.openvino import DEFAULT_KEEP_F32, OpenVinoRunner, merge_input_names
from vidtldr_deploy.validate.int8 import (
    MIN_DECISION_AGREEMENT,
    Int8Validation,
    collect_merge_inputs,
    validate_decisions,
)
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.run import validate_runner
from vidtldr_deploy.validate.tolerances import Tolerances

# Below this fraction of agreeing merge pairs a bf16 / fp16 run no longer merges what fp32 merges
# (measured in benchmarks/bench_openvino.py; see the README).
MIN_BF16_AGREEMENT = MIN_DECISION_AGREEMENT


def validate_openvino(
    path: str | Path,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs,
    tolerances: Tolerances,
    precision: str = "fp32",
    graph_precision: str = "fp32",
    device: str | None = "CPU",
    inputs_label: str = "",
    strict_tokens: bool = False,
    keep: dict | None = None,
    keep_f32: str = DEFAULT_KEEP_F32,
    low_precision_transforms: bool | None = None,
) -> ValidationResult | Int8Validation:
    """`path` (.onnx or .xml) run in OpenVINO at `precision` against PyTorch fp32. `graph_precision`
    is what the graph itself holds (`int8` for a Q/DQ graph)."""
    reduced = precision != "fp32" or graph_precision == "int8"
    if not reduced:
        with OpenVinoRunner(path, device, precision, keep_f32=keep_f32,
                            low_precision_transforms=low_precision_transforms) as runner:  # fmt: skip
            return validate_runner(
                runner, str(path), loaded, schedule, inputs, tolerances, precision=precision,
                inputs_label=inputs_label, strict_tokens=strict_tokens, keep=keep,
            )  # fmt: skip
    extra = merge_input_names(path)
    with OpenVinoRunner(path, device, precision, keep_f32=keep_f32, extra_outputs=extra,
                        low_precision_transforms=low_precision_transforms) as runner:  # fmt: skip
        names = [n for n in runner.output_names if n not in extra]
        outputs, hidden = collect_merge_inputs(runner, list(inputs), names, extra)
    label = precision if graph_precision != "int8" else "int8"
    return validate_decisions(
        outputs, hidden, str(path), loaded, schedule, inputs, tolerances, MIN_BF16_AGREEMENT,
        inputs_label, precision=label, runtime="openvino", keep=keep,
    )  # fmt: skip
