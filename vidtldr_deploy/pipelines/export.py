"""The export pipeline: load -> export -> validate -> engine -> validate, the work behind
`vidtldr export` / `vidtldr-export`, with every input checked before the first step.

The CLI owns the terminal: it passes an `ExportEvents` whose hooks show progress and results, so
the pipeline is one function a script or a test can call as well.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidtldr_deploy.constants import DEMO_SCHEDULE, MergeMethod, Precision
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError, VidTLDRError, with_note
from vidtldr_deploy.export.config import ExportConfig
from vidtldr_deploy.export.metadata import ExportSpec, GraphFormError, has_local_functions
from vidtldr_deploy.export.onnx_export import export_onnx
from vidtldr_deploy.export.quantize import QuantizeResult
from vidtldr_deploy.files import check_outputs
from vidtldr_deploy.models.source import LoadedModel, is_demo, load_source
from vidtldr_deploy.pipelines.quantize import export_int8, validate_int8_graph
from vidtldr_deploy.runtime.registry import RunnerOptions, open_runner
from vidtldr_deploy.runtime.tensorrt.build import build_engine
from vidtldr_deploy.runtime.tensorrt.sidecar import EngineSidecar, sidecar_path
from vidtldr_deploy.target import resolve_target
from vidtldr_deploy.validate.check import validate_runner
from vidtldr_deploy.validate.inputs import InputBatches, make_inputs
from vidtldr_deploy.validate.int8 import Int8Validation
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.tolerances import Tolerances


def schedule_spec(spec: str | None, source: str, what: str = "--schedule") -> str:
    """The schedule to use: the one given, the demo's default for the demo, else an error."""
    if spec is not None:
        return spec
    if is_demo(source):
        return DEMO_SCHEDULE
    raise InputError(
        f"pass {what} (e.g. 16x12, 600,200,100 or a preset such as msrvtt) or a --config that sets one"
    )


def plan_paths(output: Path) -> tuple[Path, Path | None]:
    """-o X.onnx writes the graph; -o X.plan writes X.onnx and then the engine X.plan; -o X.xml
    writes X.onnx and then the OpenVINO IR X.xml + X.bin."""
    if output.suffix == ".plan":
        return output.with_suffix(".onnx"), output
    if output.suffix == ".xml":
        return output.with_suffix(".onnx"), None
    if output.suffix != ".onnx":
        raise InputError(
            f"-o {output}: expected a .onnx or .plan file name, or .xml for OpenVINO IR"
        )
    return output, None


@dataclass
class ExportEvents:
    """What the pipeline tells its caller; every hook is optional."""

    status: Callable[[str], contextlib.AbstractContextManager] = lambda text: (
        contextlib.nullcontext()
    )
    info: Callable[[str], None] = lambda text: None
    loaded: Callable[[LoadedModel, MergeSchedule, int], None] = lambda loaded, schedule, batch: None
    # (result, report path, extra report fields such as INT8 merge-decision agreement)
    validated: Callable[[ValidationResult, Path | None, dict], None] = (
        lambda result, report, extra: None
    )


@dataclass
class ExportRequest:
    checkpoint: str
    output: Path
    config: ExportConfig
    graph_tolerances: (
        Tolerances  # ONNX Runtime runs the fp32 graph, whatever the engine's precision
    )
    engine_tolerances: Tolerances
    validate: bool = True
    inputs: list[Path] | None = None
    clip_options: dict = field(default_factory=dict)  # make_inputs' skip_bad, cache_dir, limit
    seed: int = 0
    num_inputs: int = 2
    report: Path | None = None
    plugins: Path | None = None
    calib: list[Path] | None = None  # INT8 calibration clips (videos, folders, arrays)
    unsafe_load: bool = False
    strict_tokens: bool = False


@dataclass
class ExportOutcome:
    loaded: LoadedModel
    schedule: MergeSchedule
    onnx_path: Path
    validation: ValidationResult | None = None
    engine: EngineBuild | None = None
    quantization: QuantizeResult | None = None
    int8: Int8Validation | None = None
    ir: IrOutput | None = None

    @property
    def passed(self) -> bool:
        results = [self.validation, self.int8, self.engine.validation if self.engine else None,
                   self.ir.validation if self.ir else None]  # fmt: skip
        return all(r.passed for r in results if r is not None)


@dataclass
class IrOutput:
    """The OpenVINO IR written after the graph: X.xml + X.bin, and its validation in OpenVINO."""

    xml_path: Path
    conversion: dict
    validation: ValidationResult | Int8Validation | None = None


@dataclass(frozen=True)
class CheckedRequest:
    onnx_path: Path
    engine_path: Path | None
    plugins: Path | None  # the plugin library, resolved once for the run (None: none needed)


def check_request(request: ExportRequest) -> CheckedRequest:
    """Everything that can be refused before any work: paths, schedule, TensorRT and plugins."""
    cfg = request.config
    cfg.check()
    onnx_path, engine_path = plan_paths(request.output)
    ir = request.output if request.output.suffix == ".xml" else None
    if ir is not None:
        from vidtldr_deploy.runtime.openvino import require_openvino

        require_openvino()  # before the export an IR conversion could not use
    for path in request.inputs or []:
        if not path.exists():
            raise InputError(
                f"--inputs {path} does not exist: give video files, folders of them, or .npy/.npz arrays"
            )
    engine_report = engine_report_path(request.report) if engine_path and request.report else None
    ir_report = side_report_path(request.report, "openvino") if ir and request.report else None
    check_outputs(
        {"-o": onnx_path, "the engine": engine_path, "the IR": ir,
         "the IR's weights": ir.with_suffix(".bin") if ir else None, "--report": request.report,
         "the engine's report": engine_report, "the IR's report": ir_report},
        {f"--inputs {p}": p for p in request.inputs or []},
        reports=("--report", "the engine's report", "the IR's report"),
    )  # fmt: skip
    resolve_target(request.checkpoint)  # a missing checkpoint is named before anything else
    check_graph_form_request(cfg.graph_form, request.validate, engine_path, cfg.precision)
    check_max_batch_request(cfg, engine_path)
    if engine_path is None and Precision.parse(cfg.precision) is Precision.FP16:
        raise InputError(
            f"--precision fp16 is a TensorRT engine's precision; the ONNX graph is always written in "
            f"fp32: use -o {onnx_path.with_suffix('.plan')} for an fp16 engine, or --precision fp32 "
            "for the graph alone"
        )
    plugins = None
    if engine_path is not None:
        from vidtldr_deploy.runtime.tensorrt.plugins import check_engine_build

        try:  # before the minutes of export and validation an engine build could not use
            plugins = check_engine_build(cfg.merge_impl, request.plugins)
        except VidTLDRError as err:
            raise with_note(
                err,
                f"No engine can be built here; to export the ONNX graph alone, use -o {onnx_path}",
            ) from None
    return CheckedRequest(onnx_path, engine_path, plugins)


def check_max_batch_request(cfg, engine_path: Path | None) -> None:
    """--max-batch N: the graph takes 1..N clips, and every batch-sized thing is sized N."""
    if cfg.max_batch is None:
        return
    if cfg.batch not in (1, cfg.max_batch):
        raise InputError(
            f"--batch {cfg.batch} and --max-batch {cfg.max_batch}: a dynamic-batch graph takes "
            "1..max-batch clips; give --max-batch alone"
        )
    if cfg.precision == "int8":
        # The quantizer calibrates, and validate_int8 compares, a graph of one static input shape.
        raise InputError(
            "--max-batch with --precision int8: INT8 calibration needs a static-batch graph; "
            "export INT8 with --batch, or drop --precision int8 for a dynamic batch"
        )
    if cfg.opt_batch is not None and engine_path is None:
        raise InputError(
            f"--opt-batch {cfg.opt_batch} is the TensorRT engine's optimisation-profile batch: "
            "give -o model.plan, or leave --opt-batch out for an ONNX graph"
        )
    cfg.batch = cfg.max_batch  # validation feeds (and memory is checked at) the largest batch


def check_graph_form_request(
    form: str, validate: bool, engine_path: Path | None, precision: str = "fp32"
) -> None:
    """A graph without local functions cannot be validated (or calibrated) in ONNX Runtime, and a
    `trt.plugins` graph is not what the engine build looks for: say so before any work."""
    if has_local_functions(form):
        return
    if precision == "int8":
        raise GraphFormError(
            "--precision int8 calibrates the graph in ONNX Runtime, which needs its local "
            "functions: use --graph-form portable (TensorRT takes the portable form too)"
        )
    if validate:
        raise GraphFormError(
            f"--graph-form {form} writes no local functions, so ONNX Runtime cannot validate the "
            "graph: pass --no-validate, or validate the default --graph-form portable export"
        )
    if engine_path is not None and form == "trt-ep":
        raise InputError(
            "--graph-form trt-ep is for ONNX Runtime's TensorRT execution provider; for an engine "
            f"use -o {engine_path} with --graph-form portable or trt"
        )


def run_export(request: ExportRequest, events: ExportEvents | None = None) -> ExportOutcome:
    events = events or ExportEvents()
    cfg = request.config
    checked = check_request(request)
    onnx_path, engine_path = checked.onnx_path, checked.engine_path
    with events.status(f"loading {request.checkpoint}"):
        loaded = load_source(
            request.checkpoint,
            cfg.arch,
            cfg.frames,
            cfg.ckpt_frames,
            request.unsafe_load,
            request.seed,
        )
    events.info(loaded.description)
    model = loaded.model
    # The method travels with the model: the export and every PyTorch reference below use it.
    model.method = MergeMethod.parse(cfg.method)
    loaded.check_memory(cfg.batch)  # before an export whose graph no runtime could then run
    # Asked for once the checkpoint has loaded: a corrupt one is named first.
    resolved = loaded.schedule(schedule_spec(cfg.schedule, request.checkpoint))
    for note in resolved.notes:
        events.info(f"note: {note}")
    events.loaded(loaded, resolved, cfg.batch)
    side = model.cfg.img_size
    clips: InputBatches | None = None
    if request.validate:  # read before the export, so a bad file fails before minutes of work
        clips = make_inputs(
            (cfg.batch, 3, loaded.frames, side, side),
            request.seed,
            request.num_inputs,
            request.inputs,
            arch=loaded.arch,
            **request.clip_options,
        )
        for warning in clips.warnings:
            events.info(f"warning: {warning}")
    spec = ExportSpec(
        arch=loaded.arch, frames=loaded.frames, batch=cfg.batch, schedule=resolved,
        merge_impl=cfg.merge_impl, opset=cfg.opset, checkpoint_sha256=loaded.sha256,
        checkpoint=loaded.label, graph_form=cfg.graph_form, model=loaded.name,
        max_batch=cfg.max_batch, method=cfg.method,
    )  # fmt: skip
    t0 = time.perf_counter()
    outcome = ExportOutcome(loaded, resolved, onnx_path)
    int8 = cfg.precision == "int8"
    if int8:
        with events.status(
            f"exporting ONNX ({cfg.merge_impl} merge) and quantizing it to INT8 Q/DQ"
        ):
            outcome.quantization = export_int8(
                spec, loaded, onnx_path, request.calib, request.seed, events.info
            )
    else:
        with events.status(f"exporting ONNX ({cfg.merge_impl} merge)"):
            export_onnx(model, spec, onnx_path)
    size_mb = onnx_path.stat().st_size / 2**20
    events.info(f"wrote {onnx_path} ({size_mb:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
    label = clips.label if clips is not None else ""
    if request.validate and int8:
        with events.status("validating: the INT8 graph in ONNX Runtime against PyTorch fp32"):
            outcome.int8 = validate_int8_graph(
                onnx_path, loaded, resolved, clips, request.graph_tolerances
            )
        outcome.validation = outcome.int8.validation
        extra = outcome.int8.to_dict()
        events.validated(outcome.validation, request.report,
                         {"merge_decisions": extra["merge_decisions"],
                          "quantization": outcome.quantization.to_dict(), "passed": outcome.int8.passed})  # fmt: skip
    elif request.validate:
        with (
            events.status("validating: ONNX Runtime against PyTorch"),
            open_runner("onnxruntime", onnx_path) as runner,
        ):
            outcome.validation = validate_runner(
                runner, str(onnx_path), loaded, resolved, clips, request.graph_tolerances,
                inputs_label=label, strict_tokens=request.strict_tokens,
            )  # fmt: skip
        events.validated(outcome.validation, request.report, {})
    if request.output.suffix == ".xml":
        if outcome.passed:  # never an IR from a failed graph
            outcome.ir = write_and_validate_ir(request, outcome, clips, events)
        return outcome
    if engine_path is None:
        return outcome
    if not outcome.passed:
        return outcome  # the caller says no engine was built; the graph stays for inspection
    with events.status(f"building the TensorRT engine ({cfg.precision}) and validating it"):
        outcome.engine = build_and_validate(
            onnx_path, engine_path, loaded, resolved, clips or None, request.engine_tolerances,
            precision=cfg.precision, workspace_mib=cfg.workspace_mib, plugin_library=checked.plugins,
            opt_batch=cfg.opt_batch,
            inputs_label=label, strict_tokens=request.strict_tokens, log=events.info,
        )  # fmt: skip
    events.info(f"wrote {outcome.engine.engine_path} and {outcome.engine.sidecar_path}")
    if outcome.engine.validation is not None:
        events.validated(outcome.engine.validation, engine_report_path(request.report), {})
    return outcome


@dataclass
class EngineBuild:
    engine_path: Path
    sidecar_path: Path
    sidecar: EngineSidecar
    validation: ValidationResult | None = None  # None with --no-validate
    notes: list[str] = field(default_factory=list)


def side_report_path(report: str | Path | None, what: str) -> Path | None:
    """A second output's validation report beside the ONNX one: r.json -> r.WHAT.json."""
    if report is None:
        return None
    report = Path(report)
    return report.with_name(f"{report.stem}.{what}{report.suffix or '.json'}")


def engine_report_path(report: str | Path | None) -> Path | None:
    """The engine's validation report beside the ONNX one: r.json -> r.tensorrt.json."""
    return side_report_path(report, "tensorrt")


def write_and_validate_ir(
    request: ExportRequest, outcome: ExportOutcome, clips, events: ExportEvents
) -> IrOutput:
    """The validated graph converted to OpenVINO IR (islands marked to stay f32, metadata in the
    rt_info), then validated in OpenVINO (CPU, f32) like the graph was in ONNX Runtime."""
    from vidtldr_deploy.runtime.openvino import write_ir

    xml = request.output
    with events.status(f"converting {outcome.onnx_path} to OpenVINO IR"):
        ir = IrOutput(xml, write_ir(outcome.onnx_path, xml))
    events.info(f"wrote {xml} and {xml.with_suffix('.bin')} "
                f"({ir.conversion['nodes_kept_f32']} merge-island nodes kept f32 under bf16/fp16)")  # fmt: skip
    if not request.validate:
        return ir
    from vidtldr_deploy.validate.openvino import validate_openvino

    graph_precision = "int8" if request.config.precision == "int8" else "fp32"
    with events.status("validating: the IR in OpenVINO (CPU, f32) against PyTorch"):
        ir.validation = validate_openvino(
            xml, outcome.loaded, outcome.schedule, clips, request.graph_tolerances,
            graph_precision=graph_precision, inputs_label=clips.label,
            strict_tokens=request.strict_tokens,
        )  # fmt: skip
    result = getattr(ir.validation, "validation", ir.validation)
    extra = {"merge_decisions": ir.validation.to_dict()["merge_decisions"],
             "passed": ir.validation.passed} if result is not ir.validation else {}  # fmt: skip
    events.validated(result, side_report_path(request.report, "openvino"),
                     {**extra, "openvino_ir": {"xml": str(xml), **ir.conversion}})  # fmt: skip
    return ir


def build_and_validate(
    onnx_path: str | Path,
    engine_path: str | Path,
    loaded=None,
    schedule=None,
    inputs: list[np.ndarray] | None = None,
    tolerances=None,
    precision: str = "fp32",
    workspace_mib: int | None = None,
    plugin_library: str | Path | None = None,  # resolved once for the run; None: the build resolves
    timing_cache: str | Path | None = None,
    inputs_label: str = "",
    strict_tokens: bool = False,
    log: Callable[[str], None] | None = None,
    opt_batch: int | None = None,
) -> EngineBuild:
    """Build the engine and its sidecar, then (given inputs) validate it against PyTorch.

    The ONNX graph is never touched; on failure the VidTLDRError says so."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if log:
            log(msg)

    try:
        sidecar = build_engine(
            onnx_path, engine_path, precision=precision, workspace_mib=workspace_mib,
            plugin_library=plugin_library, timing_cache=timing_cache, log=note,
            opt_batch=opt_batch,
        )  # fmt: skip
    except VidTLDRError as err:
        raise with_note(
            err, f"No engine was written; the ONNX graph is kept at {onnx_path}."
        ) from None
    result = EngineBuild(engine_path, sidecar_path(engine_path), sidecar, notes=notes)
    if inputs:
        # the library the build resolved and loaded, not a second search
        options = RunnerOptions(plugins=sidecar.plugin_library)
        with open_runner("tensorrt", engine_path, options) as runner:
            result.validation = validate_runner(
                runner, str(engine_path), loaded, schedule, inputs, tolerances,
                precision=precision, inputs_label=inputs_label, strict_tokens=strict_tokens,
            )  # fmt: skip
    return result
