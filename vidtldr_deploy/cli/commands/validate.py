"""`vidtldr validate`: an exported graph run in ONNX Runtime against its PyTorch model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import guarded, info, status
from vidtldr_deploy.cli.results import show_validation, write_report_files


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
    from vidtldr_deploy.export.reference import reference_for_graph
    from vidtldr_deploy.files import check_distinct_outputs, check_output_path, markdown_path
    from vidtldr_deploy.validate.inputs import check_inputs_exist
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.validate.inputs import make_inputs
    from vidtldr_deploy.validate.run import validate_runner

    if report is not None:
        check_output_path(report, "--report")
    check_inputs_exist(model, inputs)
    check_distinct_outputs({"the graph": model, "--report": report,
                            "--report's Markdown": markdown_path(report) if report else None})  # fmt: skip
    flags = opt.tolerance_flags(max_abs, mean_abs, min_cosine, rel_l2, min_top1, min_top5)
    tolerances = opt.tolerances_for("fp32", flags)
    with status("loading the graph and its PyTorch reference"):
        ref = reference_for_graph(model, checkpoint, unsafe_load, ckpt_frames)
    info(ref.loaded.description)
    clips = make_inputs(ref.input_shape, seed, num_inputs, inputs, arch=ref.loaded.arch)
    with status("running ONNX Runtime and PyTorch"), OnnxRuntimeRunner(model) as runner:
        result = validate_runner(
            runner, str(model), ref.loaded, ref.schedule, clips, tolerances,
            inputs_label=clips.label, strict_tokens=strict_tokens,
        )  # fmt: skip
    show_validation(result)
    write_report_files(report, result.to_dict())
    if not result.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(guarded(validate_command))
