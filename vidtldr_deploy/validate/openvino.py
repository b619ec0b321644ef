"""Validation in OpenVINO: an .onnx graph or an IR against the PyTorch fp32 model. At fp32 like any
runtime; at bf16 / fp16, and for an INT8 Q/DQ graph, with merge-decision agreement beside the
outputs (validate/int8.py), since reduced precision can change which tokens merge."""

from __future__ import annotations

from pathlib import Path

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.openvino import DEFAULT_KEEP_F32, OpenVinoRunner
from vidtldr_deploy.validate.check import validate_runner
from vidtldr_deploy.validate.int8 import Int8Validation, min_agreement_for, validate_low_precision
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.tolerances import Tolerances


def validation_precision(precision: str, graph_precision: str) -> str:
    """The precision a validation is held to: the graph's own INT8, else the one OpenVINO runs."""
    return "int8" if graph_precision == "int8" else precision


def compares_decisions(precision: str, graph_precision: str) -> bool:
    """Whether the merge decisions are compared too: anything below fp32."""
    return validation_precision(precision, graph_precision) != "fp32"


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
    keep_f32: str = DEFAULT_KEEP_F32,
    low_precision_transforms: bool | None = None,
) -> ValidationResult | Int8Validation:
    """`path` (.onnx or .xml) run in OpenVINO at `precision` against PyTorch fp32. `graph_precision`
    is what the graph itself holds (`int8` for a Q/DQ graph)."""
    reduced = compares_decisions(precision, graph_precision)
    label = validation_precision(precision, graph_precision)
    runner = OpenVinoRunner(path, device, precision, keep_f32=keep_f32, merge_inputs=reduced,
                            low_precision_transforms=low_precision_transforms)  # fmt: skip
    with runner:
        if not reduced:
            return validate_runner(
                runner, str(path), loaded, schedule, inputs, tolerances, precision, inputs_label,
                strict_tokens,
            )  # fmt: skip
        return validate_low_precision(
            runner, str(path), loaded, schedule, inputs, label, tolerances,
            min_agreement_for(label), inputs_label,
        )  # fmt: skip
