"""How each runtime gets the two models a profile times: the merged one and its unmerged baseline,
as Runners. One opener per runtime, in one table: adding a runtime adds an entry here and a runner
module under runtime/, and nothing else in profiling changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vidtldr_deploy.constants import EXPORT_MERGE_IMPLS, MODEL_MERGE_IMPLS, MergeImpl
from vidtldr_deploy.core.schedule import MergeSchedule, unmerged_schedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import Runner

# The flag's vocabulary per runtime (the model's for torch, the graph's for the exported runtimes)
# and the default: the custom ops, which are what the fast paths run.
_SPELLINGS = {
    "torch": MODEL_MERGE_IMPLS,
    "onnxruntime": EXPORT_MERGE_IMPLS,
    "tensorrt": EXPORT_MERGE_IMPLS,
    "openvino": EXPORT_MERGE_IMPLS,
}


def merge_impl_for(runtime: str, text: str | None) -> MergeImpl:
    allowed = _SPELLINGS.get(runtime, EXPORT_MERGE_IMPLS)
    if text is None:
        return MergeImpl.CUSTOM
    if text not in allowed:
        raise InputError(
            f"--merge-impl for --runtime {runtime} must be one of {', '.join(allowed)}, got {text!r}"
        )
    return MergeImpl.parse(text)


def unmerged_like(schedule: MergeSchedule) -> MergeSchedule:
    n = schedule.layers[0].tokens_in if schedule.layers else 0
    return unmerged_schedule(len(schedule.layers), n)


def export_temp_onnx(
    loaded: LoadedModel, schedule: MergeSchedule, batch: int, merge_impl: MergeImpl, path: Path
) -> Path:
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx

    spec = ExportSpec(
        arch=loaded.arch, frames=loaded.frames, batch=batch, schedule=schedule,
        merge_impl=MergeImpl.parse(merge_impl).export_name, checkpoint_sha256=loaded.sha256,
        checkpoint=loaded.label,
    )  # fmt: skip
    export_onnx(loaded.model, spec, path)
    return path


def _open_torch(inputs, settings, impl, workdir, progress) -> dict[str, Runner]:
    from vidtldr_deploy.runtime.pytorch import TorchRunner

    model, rs = inputs.loaded.model, inputs.schedule.rs
    return {
        label: TorchRunner(
            model, schedule_rs, impl, settings.device, settings.precision, settings.compile
        )
        for label, schedule_rs in (("merged", rs), ("baseline", [0] * len(rs)))
    }


def _graph_pair(inputs, settings, impl, workdir, progress) -> dict[str, Path]:
    """The merged graph (the given one, or exported with `impl`) and the unmerged baseline graph
    (standard ops), for the runtimes that run exported graphs."""
    merged = inputs.merged_onnx
    if merged is None:
        done = progress(f"exporting the merged model to ONNX ({impl.export_name} merge)", 1)
        merged = export_temp_onnx(
            inputs.loaded, inputs.schedule, settings.batch, impl, workdir / "merged.onnx"
        )
        done()
    done = progress("exporting the unmerged baseline to ONNX", 1)
    baseline = export_temp_onnx(
        inputs.loaded, unmerged_like(inputs.schedule), settings.batch, MergeImpl.STANDARD,
        workdir / "baseline.onnx",
    )  # fmt: skip
    done()
    return {"merged": Path(merged), "baseline": baseline}


def _open_onnxruntime(inputs, settings, impl, workdir, progress) -> dict[str, Runner]:
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    graphs = _graph_pair(inputs, settings, impl, workdir, progress)
    baseline = graphs["baseline"]
    if settings.precision == "int8":
        # Three rows: fp32 unmerged (the baseline), INT8 unmerged, INT8 merged, so the user sees
        # what quantizing gives and what merging adds on top of it.
        done = progress("quantizing both graphs to INT8 Q/DQ", 1)
        clips = calibration_batches(inputs, settings)
        graphs["baseline_int8"] = quantize_temp(
            baseline, workdir / "baseline_int8.onnx", clips, inputs, settings
        )
        if not _is_int8(graphs["merged"]):
            graphs["merged"] = quantize_temp(
                graphs["merged"], workdir / "merged_int8.onnx", clips, inputs, settings
            )
        done()
    return {
        label: OnnxRuntimeRunner(path, settings.device, threads=settings.threads)
        for label, path in graphs.items()
    }


def _is_int8(path: Path) -> bool:
    import onnx

    from vidtldr_deploy.export.metadata import read_metadata

    return read_metadata(onnx.load(str(path), load_external_data=False)).get("precision") == "int8"


def calibration_batches(inputs, settings):
    """The --calib clips at the profiled shape, decoded once for every graph quantized; None for
    seeded random calibration (the quantizer then warns)."""
    from vidtldr_deploy.validate.inputs import make_inputs

    if not settings.calib:
        return None
    side = inputs.loaded.model.cfg.img_size
    shape = (settings.batch, 3, inputs.loaded.frames, side, side)
    return make_inputs(shape, path=settings.calib, arch=inputs.loaded.arch)


def quantize_temp(src: Path, dst: Path, clips, inputs, settings) -> Path:
    """`src` quantized to INT8 Q/DQ like the export does, its warnings kept for the report."""
    from vidtldr_deploy.export.quantize import (
        CALIBRATION_SEED_OFFSET,
        QuantizeSettings,
        quantize_graph,
    )

    result = quantize_graph(src, dst, list(clips) if clips is not None else None,
                            clips.label if clips is not None else "",
                            QuantizeSettings(seed=settings.seed + CALIBRATION_SEED_OFFSET))  # fmt: skip
    known = inputs.extra.setdefault("int8_warnings", [])
    known.extend(w for w in result.warnings if w not in known)
    return dst


def _open_tensorrt(inputs, settings, impl, workdir, progress) -> dict[str, Runner]:
    from vidtldr_deploy.runtime.tensorrt.build import build_engine
    from vidtldr_deploy.runtime.tensorrt.runner import TensorRTRunner

    plans = {"merged": inputs.merged_plan, "baseline": inputs.baseline_plan}
    plugins: dict[str, str | None] = {}  # the library each engine built here was built with
    if plans["merged"] is None:
        onnx_path = inputs.merged_onnx or export_temp_onnx(
            inputs.loaded, inputs.schedule, settings.batch, impl, workdir / "merged.onnx"
        )
        progress("building the merged TensorRT engine", 1)
        plans["merged"] = workdir / "merged.plan"
        sidecar = build_engine(Path(onnx_path), plans["merged"], precision=settings.precision)
        plugins["merged"] = sidecar.get("plugin_library")
    if plans["baseline"] is None:
        base_onnx = export_temp_onnx(
            inputs.loaded,
            unmerged_like(inputs.schedule),
            settings.batch,
            MergeImpl.STANDARD,
            workdir / "baseline.onnx",
        )
        progress("building the unmerged TensorRT engine", 1)
        plans["baseline"] = workdir / "baseline.plan"
        build_engine(base_onnx, plans["baseline"], precision=settings.precision)
    return {
        label: TensorRTRunner(Path(plan), plugin_library=plugins.get(label))
        for label, plan in plans.items()
    }


def _open_openvino(inputs, settings, impl, workdir, progress) -> dict[str, Runner]:
    """OpenVINO merged and unmerged at the chosen precision, and ONNX Runtime fp32 unmerged (the
    common baseline across runtimes), all on the same graphs."""
    from vidtldr_deploy.profile.result import ORT_FP32_BASELINE
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.runtime.openvino import OpenVinoRunner

    graphs = _graph_pair(inputs, settings, impl, workdir, progress)
    baseline = graphs["baseline"]
    runners: dict[str, Runner] = {
        label: OpenVinoRunner(path, settings.device, settings.precision, settings.threads)
        for label, path in graphs.items()
    }
    runners[ORT_FP32_BASELINE] = OnnxRuntimeRunner(baseline, "cpu", threads=settings.threads)
    return runners


Opener = Callable[..., dict[str, Runner]]
OPENERS: dict[str, Opener] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnxruntime,
    "tensorrt": _open_tensorrt,
    "openvino": _open_openvino,
}
