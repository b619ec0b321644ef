"""`vidtldr export` / `vidtldr-export`: checkpoint -> static ONNX graph (-> TensorRT engine),
validated against PyTorch. The work is pipelines/export.py; this module parses, checks and shows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.commands.clip_args import InputArgs
from vidtldr_deploy.cli.console import guarded, info, out, status
from vidtldr_deploy.cli.results import show_merge_agreement, show_validation, write_report_files
from vidtldr_deploy.errors import CheckFailed


@opt.argument_group("flags", opt.ToleranceFlags)
@opt.argument_group("clips", InputArgs)
def export_command(
    checkpoint: Annotated[
        str,
        typer.Argument(
            help="Checkpoint file (.pt/.pth/.bin/.safetensors), Hugging Face model folder, or 'demo' for the built-in tiny model."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="model.onnx; engine.plan (writes engine.onnx, then builds the engine); or model.xml (writes model.onnx, then OpenVINO IR model.xml + model.bin).",
        ),
    ],
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config", "-c", help="Export config TOML (see export_configs/); flags override it."
        ),
    ] = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    batch: opt.Batch = None,
    schedule: opt.Schedule = None,
    merge_impl: Annotated[
        Optional[str],
        typer.Option(
            "--merge-impl",
            help="onnx: standard ops only; plugin: vidtldr Saliency/Merge nodes (TensorRT plugins) with local functions. The default is onnx, a graph every runtime runs without the plugin library; `vidtldr profile` defaults to plugin, the fast path it times.",
            show_default="onnx, or the --config's",
        ),
    ] = None,
    method: Annotated[
        Optional[str],
        typer.Option(
            "--method",
            help="vidtldr: saliency-weighted merge (a Saliency step before each Merge); tome: ToMe, the same matching and size-weighted merge without saliency (no Saliency step in the graph).",
            show_default="vidtldr",
        ),
    ] = None,
    opset: Annotated[
        Optional[int], typer.Option("--opset", help="ONNX opset, 18 to 20 (default 18).")
    ] = None,
    max_batch: Annotated[
        Optional[int],
        typer.Option(
            "--max-batch",
            help="A dynamic batch dimension 1..N (ONNX graphs and fp32/fp16 engines; token counts "
            "stay static per clip); validation feeds batches of N. Default: the static --batch.",
        ),
    ] = None,
    opt_batch: Annotated[
        Optional[int],
        typer.Option(
            "--opt-batch",
            help="With --max-batch and -o X.plan: the batch TensorRT tunes the engine for "
            "(its optimisation profile is min 1, opt this, max N).",
            show_default="the --max-batch",
        ),
    ] = None,
    graph_form: Annotated[
        Optional[str],
        typer.Option(
            "--graph-form",
            help="With --merge-impl plugin: portable (local functions, any runtime; default), trt (no local functions: trtexec, Polygraphy), trt-ep (trt.plugins domain: ONNX Runtime's TensorRT EP).",
        ),
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            "--precision",
            help="fp32, fp16 (engine only) or int8 (an explicit Q/DQ graph calibrated on --calib clips; saliency and merge always stay fp32).",
            show_default="fp32, or the --config's",
        ),
    ] = None,
    calib: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--calib",
            help="INT8 calibration clips: videos, folders of them, or .npy/.npz arrays (repeat the flag for several). Without it: random clips and a warning.",
        ),
    ] = None,
    workspace: Annotated[
        Optional[int],
        typer.Option(
            "--workspace",
            help="TensorRT workspace limit in MiB.",
            show_default="TensorRT's: up to the device's memory",
        ),
    ] = None,
    plugins: Annotated[
        Optional[Path],
        typer.Option(
            "--plugins",
            help="libvidtldr_plugins.so for the engine build (default: $VIDTLDR_PLUGIN_DIR or plugins/build).",
        ),
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip validation against PyTorch.")
    ] = False,
    clips: InputArgs = None,
    seed: opt.Seed = 0,
    num_inputs: opt.NumInputs = 2,
    report: opt.Report = None,
    unsafe_load: opt.UnsafeLoad = False,
    flags: opt.ToleranceFlags = None,
    strict_tokens: opt.StrictTokens = False,
) -> None:
    """Export a checkpoint with a static merge schedule to ONNX (and a TensorRT engine), then validate it."""
    from vidtldr_deploy.export.config import ExportConfig, load_export_config
    from vidtldr_deploy.pipelines.export import ExportEvents, ExportRequest, run_export
    from vidtldr_deploy.report.tables import schedule_table

    base = load_export_config(config) if config else ExportConfig()
    cfg = base.override(
        arch=arch, frames=frames, ckpt_frames=ckpt_frames, batch=batch, schedule=schedule,
        merge_impl=merge_impl, opset=opset, precision=precision, workspace_mib=workspace,
        graph_form=graph_form, max_batch=max_batch, opt_batch=opt_batch, method=method,
    )  # fmt: skip
    request = ExportRequest(
        checkpoint=checkpoint, output=output, config=cfg,
        # ONNX Runtime runs the fp32 graph (or the INT8 one), whatever precision the engine gets.
        graph_tolerances=opt.tolerances_for("int8" if cfg.precision == "int8" else "fp32", flags, cfg),
        engine_tolerances=opt.tolerances_for(cfg.precision, flags, cfg),
        validate=not no_validate, inputs=clips.paths or None, clip_options=clips.options(), seed=seed, num_inputs=num_inputs, report=report,
        plugins=plugins, unsafe_load=unsafe_load, strict_tokens=strict_tokens, calib=calib,
    )  # fmt: skip

    def loaded(loaded_model, resolved, batch_size):
        title = f"{loaded_model.name}, {loaded_model.frames} frames, batch {batch_size}, schedule {resolved.spec!r}"
        out.print(schedule_table(resolved.to_dict(), title))

    def validated(result, report_path, extra):
        show_validation(result)
        if "merge_decisions" in extra:
            show_merge_agreement(extra["merge_decisions"])
        write_report_files(report_path, {**result.to_dict(), **extra})

    events = ExportEvents(status=status, info=info, loaded=loaded, validated=validated)
    outcome = run_export(request, events)
    if (
        outcome.validation is not None
        and not outcome.validation.passed
        and output.suffix in (".plan", ".xml")
    ):
        what = "engine was built" if output.suffix == ".plan" else "OpenVINO IR was written"
        raise CheckFailed(f"validation failed, so no {what}; the graph is at {outcome.onnx_path}")
    if not outcome.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(guarded(export_command))


# `vidtldr-export ...`: the same command as its own app, so its help says `vidtldr-export`.
export_app = typer.Typer(**opt.APP_SETTINGS)
export_app.command()(guarded(export_command))
