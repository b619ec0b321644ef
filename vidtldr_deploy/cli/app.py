"""`vidtldr` (typer app) and `vidtldr-export`: thin commands over the library."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape  # messages quote paths and extras like [gpu]: never markup

from vidtldr_deploy.cli import options as opt
from vidtldr_deploy.errors import VidTLDRError

app = typer.Typer(
    name="vidtldr",
    help="vid-TLDR token merging for video transformers: schedule, export to ONNX/TensorRT, validate, profile.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

EXIT_FAILED = 1  # validation or comparison failed
EXIT_ERROR = 2  # bad input or environment: the message says what to fix
DEMO_SCHEDULE = "0.25x2"  # the demo's default: a quarter of the tokens in each of the first two layers


def user_errors(fn):
    """Print VidTLDRError as one clear message and exit non-zero instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VidTLDRError as err:
            console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


def _write_report(path: Path | None, data: dict) -> None:
    if path is None:
        return
    from vidtldr_deploy.reports import write_json, write_markdown

    write_json(path, data)
    md = write_markdown(path.with_suffix(".md"), data)
    console.print(f"report: {path} (Markdown: {md})", markup=False)


def _show_validation(result) -> None:
    from vidtldr_deploy.reports import comparison_table

    data = result.to_dict()
    out.print(comparison_table(data["outputs"], f"{result.runtime} against PyTorch (same schedule)"))
    if data["merge_cost"]:
        out.print(comparison_table(data["merge_cost"], "cost of merging: unmerged against merged PyTorch (not an error)", verdict=False))
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    out.print(f"validation {verdict} ({result.inputs})")


@app.command("archs")
@user_errors
def archs_command() -> None:
    """List the architectures, their default frames and token counts."""
    from rich.table import Table

    from vidtldr_deploy.models.registry import list_architectures
    from vidtldr_deploy.core.schedule import PRESETS

    table = Table(title="architectures")
    for h in ("name", "family", "frames", "tokens", "width x depth", "presets", "description"):
        table.add_column(h)
    for a in list_architectures():
        c = a.config
        tokens = (a.default_frames // c.tubelet) * (c.img_size // c.patch_size) ** 2
        presets = ", ".join(PRESETS.get(a.name, {})) or "-"
        table.add_row(a.name, a.family, str(a.default_frames), str(tokens), f"{c.embed_dim} x {c.depth}", presets, a.description)
    out.print(table)


@app.command("schedule")
@user_errors
def schedule_command(
    arch: Annotated[str, typer.Option("--arch", help="Architecture name.")],
    schedule: opt.Schedule = None,
    frames: opt.Frames = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Resolve a schedule into the per-layer token table and FLOPs, merged against unmerged."""
    from vidtldr_deploy.core.flops import count_flops, token_count
    from vidtldr_deploy.core.schedule import resolve_schedule
    from vidtldr_deploy.models.registry import get_architecture
    from vidtldr_deploy.models.vit import check_input_geometry

    spec = get_architecture(arch)
    cfg = spec.config
    frames = frames or spec.default_frames
    check_input_geometry(cfg, frames)
    n = token_count(cfg, frames)
    resolved = resolve_schedule(schedule or "none", cfg.depth, n, spec.name)
    flops = count_flops(cfg, frames, resolved)
    data = {
        "kind": "schedule",
        "arch": spec.name,
        "frames": frames,
        "spec": resolved.spec,
        "layers": resolved.to_dict()["layers"],
        "flops": {"merged": flops.merged, "baseline": flops.baseline, "ratio": flops.ratio, "ideal_speedup": flops.speedup},
    }
    if as_json:
        print(json.dumps(data))
        return
    from vidtldr_deploy.reports import schedule_table

    out.print(schedule_table(resolved.to_dict(), f"{spec.name}, {frames} frames, schedule {resolved.spec!r}"))
    out.print(
        f"FLOPs (multiply-adds, fvcore convention): merged {flops.merged / 1e9:.2f} G, "
        f"unmerged {flops.baseline / 1e9:.2f} G, ideal speedup {flops.speedup:.2f}x"
    )


def _plan_paths(output: Path) -> tuple[Path, Path | None]:
    """-o X.onnx writes the graph; -o X.plan writes X.onnx and then the engine X.plan."""
    if output.suffix == ".plan":
        return output.with_suffix(".onnx"), output
    if output.suffix != ".onnx":
        raise VidTLDRError(f"-o {output}: expected a .onnx or .plan file name")
    return output, None


@app.command("export")
@user_errors
def export_command(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint file (.pt/.pth/.bin/.safetensors), Hugging Face model folder, or 'demo' for the built-in tiny model.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="model.onnx, or engine.plan (writes engine.onnx, then builds the engine).")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Export config TOML (see export_configs/); flags override it.")] = None,
    arch: opt.Arch = None,
    frames: opt.Frames = None,
    ckpt_frames: opt.CkptFrames = None,
    batch: opt.Batch = None,
    schedule: opt.Schedule = None,
    merge_impl: Annotated[Optional[str], typer.Option("--merge-impl", help="onnx: standard ops only; plugin: vidtldr Saliency/Merge nodes (TensorRT plugins) with local functions.")] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset (default 18).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="Engine precision: fp32 or fp16 (saliency and merge stay fp32).")] = None,
    workspace: Annotated[Optional[int], typer.Option("--workspace", help="TensorRT workspace limit in MiB.")] = None,
    plugins: Annotated[Optional[Path], typer.Option("--plugins", help="libvidtldr_plugins.so for the engine build (default: $VIDTLDR_PLUGIN_DIR or plugins/build).")] = None,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip validation against PyTorch.")] = False,
    inputs: opt.Inputs = None,
    seed: opt.Seed = 0,
    num_inputs: opt.NumInputs = 2,
    report: opt.Report = None,
    unsafe_load: opt.UnsafeLoad = False,
    max_abs: opt.MaxAbs = None,
    mean_abs: opt.MeanAbs = None,
    min_cosine: opt.MinCosine = None,
    rel_l2: opt.RelL2 = None,
    min_top1: opt.MinTop1 = None,
    min_top5: opt.MinTop5 = None,
    strict_tokens: opt.StrictTokens = False,
) -> None:
    """Export a checkpoint with a static merge schedule to ONNX (and a TensorRT engine), then validate it."""
    from vidtldr_deploy.backends.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.core.schedule import resolve_schedule
    from vidtldr_deploy.export.config import ExportConfig, load_export_config
    from vidtldr_deploy.export.onnx_export import ExportSpec, export_onnx
    from vidtldr_deploy.models.source import DEMO, DEMO_PREFIX, load_source
    from vidtldr_deploy.reports import schedule_table
    from vidtldr_deploy.validate import make_inputs, validate_runner

    base = load_export_config(config) if config else ExportConfig()
    cfg = base.override(
        arch=arch, frames=frames, ckpt_frames=ckpt_frames, batch=batch, schedule=schedule,
        merge_impl=merge_impl, opset=opset, precision=precision, workspace_mib=workspace,
    )  # fmt: skip
    cfg.check()
    flags = opt.ToleranceFlags(max_abs, mean_abs, min_cosine, rel_l2, min_top1, min_top5)
    onnx_path, engine_path = _plan_paths(output)
    if not onnx_path.parent.is_dir():
        raise VidTLDRError(f"output directory {onnx_path.parent} does not exist: create it or choose another -o path")
    is_demo = checkpoint == DEMO or checkpoint.startswith(DEMO_PREFIX)
    spec_text = cfg.schedule or (DEMO_SCHEDULE if is_demo else None)
    if spec_text is None:
        raise VidTLDRError("pass --schedule (e.g. 16x12, 600,200,100 or a preset such as msrvtt) or a --config that sets one")

    if engine_path is not None:
        from vidtldr_deploy.backends import tensorrt as trt_backend

        try:  # before the minutes of export and validation an engine build could not use
            trt_backend.check_engine_build(cfg.merge_impl, plugins)
        except VidTLDRError as err:
            raise VidTLDRError(f"{err}\nNo engine can be built here; to export the ONNX graph alone, use -o {onnx_path}") from None

    with console.status(f"loading {checkpoint}"):
        loaded = load_source(checkpoint, cfg.arch, cfg.frames, cfg.ckpt_frames, unsafe_load, seed)
    console.print(loaded.description, highlight=False)
    model = loaded.model
    resolved = resolve_schedule(spec_text, model.cfg.depth, model.num_tokens, loaded.arch)
    out.print(schedule_table(resolved.to_dict(), f"{loaded.arch}, {loaded.frames} frames, batch {cfg.batch}"))

    spec = ExportSpec(
        arch=loaded.arch, frames=loaded.frames, batch=cfg.batch, schedule=resolved,
        merge_impl=cfg.merge_impl, opset=cfg.opset, checkpoint_sha256=loaded.sha256,
        checkpoint=loaded.label,
    )  # fmt: skip
    t0 = time.perf_counter()
    with console.status(f"exporting ONNX ({cfg.merge_impl} merge)"):
        export_onnx(model, spec, onnx_path)
    size_mb = onnx_path.stat().st_size / 2**20
    console.print(f"wrote {onnx_path} ({size_mb:.1f} MiB) in {time.perf_counter() - t0:.1f} s", highlight=False, markup=False)

    passed = True
    if not no_validate:
        # ONNX Runtime runs the fp32 graph, whatever precision the engine will have.
        tolerances = opt.tolerances_for("fp32", flags, cfg)
        side = model.cfg.img_size
        clips = make_inputs((cfg.batch, 3, loaded.frames, side, side), seed, num_inputs, inputs)
        with console.status("validating: ONNX Runtime against PyTorch"):
            result = validate_runner(
                OnnxRuntimeRunner(onnx_path), str(onnx_path), loaded, resolved, clips, tolerances,
                inputs_label=str(inputs) if inputs else "", strict_tokens=strict_tokens,
            )  # fmt: skip
        _show_validation(result)
        _write_report(report, result.to_dict())
        passed = result.passed
    if engine_path is not None:
        if not passed:
            raise VidTLDRError(f"validation failed, so no engine was built; the graph is at {onnx_path}")
        engine_clips, engine_tolerances = None, None
        if not no_validate:
            engine_tolerances = opt.tolerances_for(cfg.precision, flags, cfg)
            engine_clips = clips
        with console.status(f"building the TensorRT engine ({cfg.precision}) and validating it"):
            built = trt_backend.build_and_validate(
                onnx_path, engine_path, loaded, resolved, engine_clips, engine_tolerances,
                precision=cfg.precision, workspace_mib=cfg.workspace_mib, plugin_library=plugins,
                inputs_label=str(inputs) if inputs else "", strict_tokens=strict_tokens,
                log=lambda msg: console.print(msg, highlight=False),
            )  # fmt: skip
        console.print(f"wrote {built.engine_path} and {built.sidecar_path}", highlight=False, markup=False)
        if built.validation is not None:
            _show_validation(built.validation)
            _write_report(trt_backend.engine_report_path(report), built.validation.to_dict())
            passed = built.validation.passed
    if not passed:
        raise typer.Exit(EXIT_FAILED)


@app.command("validate")
@user_errors
def validate_command(
    model: Annotated[Path, typer.Argument(help="An .onnx graph written by vidtldr export.")],
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help="The checkpoint it was exported from (default: the one recorded in the graph).")] = None,
    ckpt_frames: opt.CkptFrames = None,
    inputs: opt.Inputs = None,
    seed: opt.Seed = 0,
    num_inputs: opt.NumInputs = 2,
    report: opt.Report = None,
    unsafe_load: opt.UnsafeLoad = False,
    max_abs: opt.MaxAbs = None,
    mean_abs: opt.MeanAbs = None,
    min_cosine: opt.MinCosine = None,
    rel_l2: opt.RelL2 = None,
    min_top1: opt.MinTop1 = None,
    min_top5: opt.MinTop5 = None,
    strict_tokens: opt.StrictTokens = False,
) -> None:
    """Run an exported graph in ONNX Runtime and compare it with the PyTorch model (same schedule)."""
    from vidtldr_deploy.backends.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.validate import make_inputs, reference_for_graph, validate_runner

    with console.status("loading the graph and its PyTorch reference"):
        ref = reference_for_graph(model, checkpoint, unsafe_load, ckpt_frames)
        runner = OnnxRuntimeRunner(model)
    console.print(ref.loaded.description, highlight=False)
    clips = make_inputs(ref.input_shape, seed, num_inputs, inputs)
    flags = opt.ToleranceFlags(max_abs, mean_abs, min_cosine, rel_l2, min_top1, min_top5)
    with console.status("running ONNX Runtime and PyTorch"):
        result = validate_runner(
            runner, str(model), ref.loaded, ref.schedule, clips, opt.tolerances_for("fp32", flags),
            inputs_label=str(inputs) if inputs else "", strict_tokens=strict_tokens,
        )  # fmt: skip
    _show_validation(result)
    _write_report(report, result.to_dict())
    if not result.passed:
        raise typer.Exit(EXIT_FAILED)


@app.command("build-plugins")
@user_errors
def build_plugins_command(
    build_dir: Annotated[Path, typer.Option("--build-dir", help="CMake build folder.")] = Path("plugins/build"),
    tensorrt_root: Annotated[Optional[Path], typer.Option("--tensorrt-root", help="TensorRT install (default: $TENSORRT_ROOT or system paths).")] = None,
    cuda_archs: Annotated[Optional[str], typer.Option("--cuda-archs", help="CMAKE_CUDA_ARCHITECTURES, e.g. '87' for Orin (default covers Xavier, Orin and x86 GPUs).")] = None,
    source_dir: Annotated[Path, typer.Option("--source-dir", help="The plugins/ CMake project.")] = Path("plugins"),
) -> None:
    """Build libvidtldr_kernels (CUDA) and, where TensorRT is found, libvidtldr_plugins."""
    from vidtldr_deploy.backends.plugin_build import build_plugins

    with console.status("building the plugins with CMake"):
        built = build_plugins(source_dir, build_dir, tensorrt_root, cuda_archs)
    for name, path in built.items():
        out.print(f"{name}: {path}")


def main() -> None:
    app()


def export_main() -> None:
    """`vidtldr-export ...` is `vidtldr export ...`."""
    sys.argv = [sys.argv[0], "export", *sys.argv[1:]]
    app()


# Commands that live in their own modules register themselves on `app` when imported.
from vidtldr_deploy.cli import profile_cmd  # noqa: E402,F401
