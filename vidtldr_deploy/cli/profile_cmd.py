"""`vidtldr profile`: merged against unmerged latency, interleaved, with FLOPs and per-layer times.

Registered on `app` when vidtldr_deploy.cli.app imports this module (at its bottom)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import options as opt
from vidtldr_deploy.cli.app import DEMO_SCHEDULE, app, console, out, user_errors
from vidtldr_deploy.errors import VidTLDRError


def _rich_progress(progress):
    """A library progress callback backed by one rich Progress: one bar per phase."""
    state = {"task": None}

    def phase(description: str, total: int):
        if state["task"] is not None:
            progress.remove_task(state["task"])
        state["task"] = progress.add_task(description, total=total)
        task = state["task"]
        return lambda: progress.advance(task)

    return phase


@app.command("profile")
@user_errors
def profile_command(
    target: Annotated[str, typer.Argument(help="Checkpoint, 'demo', an .onnx from `vidtldr export` (rebuilt from its metadata), or a TensorRT .plan.")],
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="torch, onnxruntime or tensorrt.")] = "torch",
    device: Annotated[str, typer.Option("--device", "-d", help="cpu or cuda.")] = "cpu",
    batch: opt.Batch = None,
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Timed iterations per model (interleaved).")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed warm-up iterations per model.")] = 10,
    precision: Annotated[str, typer.Option("--precision", help="fp32 or fp16 (torch and tensorrt; saliency and merge stay fp32).")] = "fp32",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON here (Markdown beside it, .md).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG: latency distributions and tokens per layer.")] = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    schedule: opt.Schedule = None,
    merge_impl: Annotated[Optional[str], typer.Option("--merge-impl", help="torch: custom_op (CUDA kernels on the GPU, default) or reference; onnxruntime/tensorrt: plugin (default) or onnx.")] = None,
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile both models (torch runtime).")] = False,
    layers: Annotated[bool, typer.Option("--layers/--no-layers", help="Per-layer times from a separate instrumented pass after timing.")] = True,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="For a .plan target: the unmerged engine to compare with (otherwise built from the ONNX beside the plan).")] = None,
    seed: opt.Seed = 0,
    unsafe_load: opt.UnsafeLoad = False,
) -> None:
    """Latency of the merged model against its unmerged baseline (same runtime, same inputs, interleaved)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vidtldr_deploy import profile as prof
    from vidtldr_deploy.core.schedule import resolve_schedule
    from vidtldr_deploy.models.source import DEMO, DEMO_PREFIX, load_source
    from vidtldr_deploy.reports import schedule_table, write_json, write_markdown

    settings = prof.ProfileSettings(
        runtime=runtime, device=device, batch=batch or 1, iterations=iterations, warmup=warmup,
        precision=precision, merge_impl=merge_impl, compile=compile_model, layers=layers, seed=seed,
    )  # fmt: skip
    for path, what in ((json_path, "--json"), (plot, "--plot")):
        if path is not None and not path.parent.is_dir():
            raise VidTLDRError(f"{what} {path}: directory {path.parent} does not exist")
    suffix = Path(target).suffix.lower()
    merged_onnx = merged_plan = None
    if suffix in (".onnx", ".plan"):
        if arch or frames or schedule or ckpt_frames:
            raise VidTLDRError(
                f"{target} fixes the architecture, frames and schedule: --arch/--frames/--schedule "
                "apply to checkpoints and 'demo' only"
            )
        if suffix == ".plan":
            if runtime != "tensorrt":
                raise VidTLDRError(f"{target} is a TensorRT engine: use --runtime tensorrt --device cuda")
            settings.check()  # TensorRT installed, CUDA device
            onnx_path = Path(target).with_suffix(".onnx")
            if not onnx_path.exists():
                raise VidTLDRError(
                    f"{target}: the graph it was built from ({onnx_path}) is not beside it; the "
                    "profile rebuilds the PyTorch model and FLOPs from the graph's metadata"
                )
            merged_plan = Path(target)
        else:
            onnx_path = Path(target)
        settings.check()
        from vidtldr_deploy.validate import reference_for_graph

        with console.status(f"loading {onnx_path} and rebuilding its PyTorch model from the metadata"):
            ref = reference_for_graph(onnx_path, None, unsafe_load, None)
        graph_batch = ref.input_shape[0]
        if batch is not None and batch != graph_batch:
            raise VidTLDRError(
                f"--batch {batch}: {onnx_path} has a static batch of {graph_batch}; export another "
                "graph for another batch, or leave --batch out"
            )
        settings.batch = graph_batch
        if runtime != "torch":
            settings.merge_impl = ref.metadata.get("merge_impl", "onnx")
        loaded, resolved = ref.loaded, ref.schedule
        merged_onnx = onnx_path
    else:
        if baseline is not None:
            raise VidTLDRError("--baseline applies to a .plan target only")
        settings.check()
        is_demo = target == DEMO or target.startswith(DEMO_PREFIX)
        spec_text = schedule or (DEMO_SCHEDULE if is_demo else None)
        if spec_text is None:
            raise VidTLDRError("pass --schedule (e.g. 16x12, 600,200,100 or a preset such as msrvtt)")
        with console.status(f"loading {target}"):
            loaded = load_source(target, arch, frames, ckpt_frames, unsafe_load, seed)
        resolved = resolve_schedule(spec_text, loaded.model.cfg.depth, loaded.model.num_tokens, loaded.arch)
    console.print(loaded.description, highlight=False)
    if baseline is not None and not baseline.exists():
        raise VidTLDRError(f"--baseline {baseline} does not exist")

    inputs = prof.ProfileInputs(
        loaded=loaded, schedule=resolved, target=target, merged_onnx=merged_onnx,
        merged_plan=merged_plan, baseline_plan=baseline,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        report = prof.run_profile(inputs, settings, _rich_progress(progress))

    out.print(schedule_table(report["schedule"], f"{loaded.arch}, {loaded.frames} frames, batch {settings.batch}"))
    out.print(prof.latency_table(report))
    if report["merged"].get("breakdown") and report["baseline"].get("breakdown"):
        if report["merged"]["breakdown"].get("layers"):
            out.print(prof.layer_table(report))
        out.print(prof.parts_table(report))
    out.print(prof.summary_line(report), highlight=False)
    if "fast_path" in report and device == "cuda":
        fp = report["fast_path"]
        console.print(f"saliency/merge on CUDA: {fp['path']} ({fp['reason']})", highlight=False, markup=False)
    for note in report.get("notes", []):
        console.print(f"note: {note}", highlight=False, markup=False)
    if json_path is not None:
        write_json(json_path, report)
        md = write_markdown(json_path.with_suffix(".md"), report)
        console.print(f"report: {json_path} (Markdown: {md})", highlight=False, markup=False)
    if plot is not None:
        prof.plot_profile(report, plot)
        console.print(f"plot: {plot}", highlight=False, markup=False)
