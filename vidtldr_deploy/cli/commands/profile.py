"""`vidtldr profile`: merged against unmerged latency, interleaved, with FLOPs and per-layer times."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import console, guarded, info, out, rich_progress_callback, status
from vidtldr_deploy.cli.results import show_warnings, write_report_files
from vidtldr_deploy.errors import InputError


def profile_command(
    target: Annotated[
        str,
        typer.Argument(
            help="Checkpoint, 'demo', an .onnx from `vidtldr export` (rebuilt from its metadata), or a TensorRT .plan."
        ),
    ],
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            "-r",
            help="torch, onnxruntime, tensorrt or openvino (also times ONNX Runtime fp32 unmerged as the common baseline).",
        ),
    ] = "torch",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "-d",
            help="cpu or cuda; OpenVINO's names for openvino (CPU, GPU, NPU, AUTO).",
        ),
    ] = "cpu",
    batch: opt.Batch = None,
    iterations: Annotated[
        int, typer.Option("--iterations", "-n", help="Timed iterations per model (interleaved).")
    ] = 50,
    warmup: Annotated[
        int, typer.Option("--warmup", help="Untimed warm-up iterations per model.")
    ] = 10,
    duration: Annotated[
        Optional[float],
        typer.Option(
            "--duration",
            help="Time-boxed timing (as trtexec): at least --iterations, then more interleaved iterations until this many seconds of timing have passed.",
            show_default="off",
        ),
    ] = None,
    threads: opt.Threads = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="fp32, fp16 (torch, tensorrt, openvino), bf16 (openvino) or int8 (onnxruntime: fp32 unmerged, INT8 unmerged and INT8 merged side by side).",
        ),
    ] = "fp32",
    calib: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--calib",
            help="INT8 calibration clips (videos, folders, .npy/.npz) for --precision int8.",
            show_default="seeded random clips, with a warning",
        ),
    ] = None,
    json_path: opt.ReportWithJsonAlias = None,
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help="Write a PNG: latency distributions and tokens per layer."),
    ] = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    schedule: opt.Schedule = None,
    merge_impl: Annotated[
        Optional[str],
        typer.Option(
            "--merge-impl",
            help="torch: custom_op (CUDA kernels on the GPU, default) or reference; onnxruntime/tensorrt: plugin (default) or onnx.",
        ),
    ] = None,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile both models (torch runtime).")
    ] = False,
    layers: Annotated[
        bool,
        typer.Option(
            "--layers/--no-layers",
            help="Per-layer times from a separate instrumented pass after timing.",
        ),
    ] = True,
    baseline: Annotated[
        Optional[Path],
        typer.Option(
            "--baseline",
            help="For a .plan target: the unmerged engine to compare with (otherwise built from the ONNX beside the plan).",
        ),
    ] = None,
    seed: opt.Seed = 0,
    unsafe_load: opt.UnsafeLoad = False,
) -> None:
    """Latency of the merged model against its unmerged baseline (same runtime, same inputs, interleaved)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vidtldr_deploy.files import check_outputs
    from vidtldr_deploy.pipelines.export import schedule_spec
    from vidtldr_deploy.profile.run import ProfileInputs, ProfileSettings, run_profile
    from vidtldr_deploy.report import plots, tables
    from vidtldr_deploy.report.cells import run_facts
    from vidtldr_deploy.target import TargetKind, resolve_target

    settings = ProfileSettings(
        runtime=runtime, device=device, batch=1 if batch is None else batch, iterations=iterations, warmup=warmup,
        precision=precision, merge_impl=merge_impl, compile=compile_model, layers=layers, seed=seed,
        calib=list(calib) if calib else None,
        duration=duration, threads=threads,
    )  # fmt: skip
    check_outputs({"--report": json_path, "--plot": plot},
                  {"the target": Path(target), **{f"--calib {p}": p for p in calib or []}})  # fmt: skip
    resolved_target = resolve_target(target)  # an engine's sidecar and graph checked here
    merged_onnx = merged_plan = None
    if resolved_target.kind.exported:
        resolved_target.refuse_model_flags(
            arch=arch, frames=frames, schedule=schedule, ckpt_frames=ckpt_frames
        )
        if resolved_target.kind is TargetKind.ENGINE:
            if runtime != "tensorrt":
                raise InputError(
                    f"{target} is a TensorRT engine: use --runtime tensorrt --device cuda"
                )
            merged_plan = Path(target)
        if resolved_target.kind is TargetKind.IR and runtime != "openvino":
            raise InputError(f"{target} is an OpenVINO IR: use --runtime openvino")
        onnx_path = resolved_target.graph_path
        settings.check()  # TensorRT installed, CUDA device
        with status(f"loading {onnx_path} and rebuilding its PyTorch model from the metadata"):
            ref = resolved_target.reference(None, unsafe_load, None)
        graph_batch = ref.input_shape[0]
        if batch is not None and batch != graph_batch:
            raise InputError(
                f"--batch {batch}: {onnx_path} has a static batch of {graph_batch}; export another "
                "graph for another batch, or leave --batch out"
            )
        settings.batch = graph_batch
        if runtime != "torch":
            settings.merge_impl = resolved_target.graph.merge_impl
        loaded, resolved = ref.loaded, ref.schedule
        merged_onnx = onnx_path
    else:
        if baseline is not None:
            raise InputError("--baseline applies to a .plan target only")
        settings.check()
        with status(f"loading {target}"):  # a broken checkpoint is named before the schedule
            loaded = resolved_target.load(arch, frames, ckpt_frames, unsafe_load, seed)
        resolved = loaded.schedule(schedule_spec(schedule, target))
    loaded.check_memory(settings.batch)
    info(loaded.description)
    for note in resolved.notes:
        info(f"note: {note}")
    if baseline is not None and not baseline.exists():
        raise InputError(f"--baseline {baseline} does not exist")

    inputs = ProfileInputs(
        loaded=loaded, schedule=resolved, target=target, merged_onnx=merged_onnx,
        merged_plan=merged_plan, baseline_plan=baseline,
    )  # fmt: skip
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        result = run_profile(inputs, settings, rich_progress_callback(progress))
    report = result.to_dict()

    title = (
        f"{loaded.name}, {loaded.frames} frames, batch {settings.batch}, schedule {resolved.spec!r}"
    )
    out.print(tables.schedule_table(report["schedule"], title))
    out.print(tables.latency_table(report))
    if report["merged"].get("breakdown") and report["baseline"].get("breakdown"):
        if report["merged"]["breakdown"].get("layers"):
            out.print(tables.layer_table(report))
        out.print(tables.parts_table(report))
    out.print(tables.summary_line(report), highlight=False)
    facts = "; ".join(f"{k} {v}" for k, v in run_facts(report) if k not in ("timing", "inputs"))
    out.print(facts, highlight=False, markup=False)
    if "fast_path" in report and device == "cuda":
        fp = report["fast_path"]
        console.print(
            f"saliency/merge on CUDA: {fp['path']} ({fp['reason']})", highlight=False, markup=False
        )
    for note in report.get("notes", []):
        console.print(f"note: {note}", highlight=False, markup=False)
    show_warnings(report["warnings"] + report.get("int8_warnings", []))
    write_report_files(json_path, report)
    if plot is not None:
        plots.plot_profile(report, plot)
        console.print(f"plot: {plot}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("profile")(guarded(profile_command))
