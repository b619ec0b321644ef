"""The INT8 step of an export: the fp32 graph -> an explicit Q/DQ graph calibrated on clips, with the
merge islands kept fp32, validated against the PyTorch fp32 model (docs/design.md, "INT8")."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.export.metadata import ExportSpec
from vidtldr_deploy.export.onnx_export import export_onnx
from vidtldr_deploy.export.quantize import (
    CALIBRATION_SEED_OFFSET,
    QuantizeResult,
    QuantizeSettings,
    quantize_graph,
)
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.validate.inputs import InputBatches, make_inputs
from vidtldr_deploy.validate.int8 import Int8Validation, validate_int8
from vidtldr_deploy.validate.tolerances import Tolerances


def export_int8(
    model_spec: ExportSpec,
    loaded: LoadedModel,
    out_path: Path,
    calib: list[Path] | None,
    seed: int,
    info: Callable[[str], None] = lambda text: None,
) -> QuantizeResult:
    """Export the fp32 graph into a temporary folder and write its INT8 Q/DQ form at `out_path`."""
    side = loaded.model.cfg.img_size
    shape = (model_spec.batch, 3, loaded.frames, side, side)
    clips: InputBatches | None = None
    if calib:
        clips = make_inputs(shape, path=calib, arch=loaded.arch)
    with tempfile.TemporaryDirectory(prefix="vidtldr-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(loaded.model, model_spec, fp32)
        result = quantize_graph(
            fp32, out_path, list(clips) if clips is not None else None,
            clips_description=clips.label if clips is not None else "",
            settings=QuantizeSettings(seed=seed + CALIBRATION_SEED_OFFSET),
        )  # fmt: skip
    for warning in result.warnings:
        info(f"warning: {warning}")
    return result


def validate_int8_graph(
    path: Path,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    clips: InputBatches,
    tolerances: Tolerances,
) -> Int8Validation:
    return validate_int8(
        path, loaded, schedule, clips, tolerances=tolerances, inputs_label=clips.label
    )
