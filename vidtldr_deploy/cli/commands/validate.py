"""`vidtldr validate`: an exported graph (ONNX Runtime, CPU or CUDA) or a TensorRT engine against
its PyTorch model, with the inputs and outputs saved for a rerun elsewhere (Polygraphy's
--save-inputs / --load-inputs / --save-outputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.commands.clip_args import InputArgs
from vidtldr_deploy.cli.console import guarded, info, status
from vidtldr_deploy.cli.results import show_merge_agreement, show_validation, write_report_files
from vidtldr_deploy.errors import InputError

REFERENCE_PREFIX = "reference/"  # --save-outputs keys of the PyTorch reference's outputs


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One .npz, written atomically (a file object: np.savez would append .npz to a temp name)."""
    from vidtldr_deploy.files import atomic_output

    with atomic_output(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def input_arrays(clips: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"clip_{i:03d}": clip for i, clip in enumerate(clips)}


def output_arrays(runs) -> dict[str, np.ndarray]:
    """The runtime's outputs, and the PyTorch reference's under REFERENCE_PREFIX."""
    arrays = dict(runs.runtime.outputs)
    arrays.update(
        {f"{REFERENCE_PREFIX}{name}": value for name, value in runs.reference.outputs.items()}
    )
    return arrays


SUFFIX_RUNTIMES = {".onnx": "onnxruntime", ".plan": "tensorrt", ".xml": "openvino"}
RUNS_IN = {".onnx": ("onnxruntime", "openvino"), ".plan": ("tensorrt",), ".xml": ("openvino",)}


def resolve_runtime(model: Path, runtime: str | None, device: str | None) -> tuple[str, str]:
    """The runtime and device for a target: an engine runs in TensorRT on CUDA, an IR in OpenVINO
    (CPU by default), a graph in ONNX Runtime (CPU by default, CUDA through its CUDA execution
    provider) or in OpenVINO."""
    suffix = model.suffix.lower()
    if suffix not in SUFFIX_RUNTIMES:
        raise InputError(
            f"{model}: expected an .onnx graph, a .plan engine or an .xml OpenVINO IR from vidtldr export"
        )
    default = SUFFIX_RUNTIMES[suffix]
    runtime = runtime or default
    if runtime not in ("onnxruntime", "tensorrt", "openvino"):
        raise InputError(f"--runtime must be onnxruntime, tensorrt or openvino, got {runtime!r}")
    if runtime not in RUNS_IN[suffix]:
        fix = {".plan": "validate the .onnx beside it with --runtime onnxruntime",
               ".xml": "validate the .onnx it was converted from with --runtime onnxruntime",
               ".onnx": f"build an engine (vidtldr export CKPT -o {model.with_suffix('.plan')}) and "
                        "validate the .plan"}[suffix]  # fmt: skip
        raise InputError(f"{model} runs in {' or '.join(RUNS_IN[suffix])}, not {runtime}: {fix}")
    fallback = {"tensorrt": "cuda", "openvino": "CPU"}.get(runtime, "cpu")
    return runtime, device or fallback


def check_validate_outputs(model: Path, inputs, report, save_inputs, save_outputs) -> None:
    from vidtldr_deploy.files import check_outputs

    for path, what in ((save_inputs, "--save-inputs"), (save_outputs, "--save-outputs")):
        if path is not None and path.suffix != ".npz":
            raise InputError(f"{what} {path}: give a .npz file name")
    check_outputs({"--report": report, "--save-inputs": save_inputs, "--save-outputs": save_outputs},
                  {("the engine" if model.suffix == ".plan" else "the graph"): model,
                   **{f"--inputs {p}": p for p in inputs or []}})  # fmt: skip


@opt.argument_group("flags", opt.ToleranceFlags)
@opt.argument_group("clips", InputArgs)
def validate_command(
    model: Annotated[
        Path,
        typer.Argument(
            help="An .onnx graph or a TensorRT .plan engine (with its .plan.json and the .onnx beside it) written by vidtldr export."
        ),
    ],
    runtime: Annotated[
        Optional[str],
        typer.Option(
            "--runtime",
            "-r",
            help="onnxruntime or openvino (for .onnx), tensorrt (for .plan), openvino (for .xml IR).",
            show_default="by the file: .onnx onnxruntime, .plan tensorrt, .xml openvino",
        ),
    ] = None,
    device: Annotated[
        Optional[str],
        typer.Option(
            "--device",
            "-d",
            help="cpu or cuda (ONNX Runtime's CUDA execution provider; TensorRT is always cuda); OpenVINO's device names for openvino (CPU, GPU, NPU, AUTO).",
            show_default="cpu; cuda for tensorrt; CPU for openvino",
        ),
    ] = None,
    precision: Annotated[
        Optional[str],
        typer.Option(
            "--precision",
            help="openvino only: fp32, bf16 or fp16 for the transformer (bf16/fp16 also report merge-decision agreement).",
            show_default="fp32",
        ),
    ] = None,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(
            "--checkpoint",
            help="The checkpoint it was exported from (default: the one recorded in the graph).",
        ),
    ] = None,
    plugins: Annotated[
        Optional[Path],
        typer.Option(
            "--plugins",
            help="libvidtldr_plugins.so for an engine with plugin layers.",
            show_default="$VIDTLDR_PLUGIN_DIR, plugins/build or the sidecar's",
        ),
    ] = None,
    ckpt_frames: opt.CkptFrames = None,
    clips: InputArgs = None,
    save_inputs: opt.SaveInputs = None,
    save_outputs: opt.SaveOutputs = None,
    seed: opt.Seed = 0,
    num_inputs: opt.NumInputs = 2,
    report: opt.Report = None,
    unsafe_load: opt.UnsafeLoad = False,
    flags: opt.ToleranceFlags = None,
    strict_tokens: opt.StrictTokens = False,
) -> None:
    """Run an exported graph (ONNX Runtime) or engine (TensorRT) and compare it with the PyTorch
    model (same schedule)."""
    from vidtldr_deploy.constants import Precision
    from vidtldr_deploy.runtime.devices import check_device
    from vidtldr_deploy.target import resolve_target
    from vidtldr_deploy.validate.compare import compare_validation
    from vidtldr_deploy.validate.inputs import check_inputs_exist, make_inputs
    from vidtldr_deploy.validate.run import run_validation

    runtime, device = resolve_runtime(model, runtime, device)
    if precision is not None and runtime != "openvino":
        raise InputError(
            "--precision applies to --runtime openvino: a graph or engine fixes its own precision"
        )
    inputs = clips.paths
    check_inputs_exist(model, inputs)
    check_validate_outputs(model, inputs, report, save_inputs, save_outputs)
    target = resolve_target(model)  # the engine's sidecar and graph, the graph's description
    check_device(runtime, device)  # before any work: a named exit-2 error where unavailable
    run_precision = "fp32"
    if runtime == "openvino":
        from vidtldr_deploy.runtime.openvino import check_precision

        run_precision = precision or "fp32"
        check_precision(run_precision)
    precision = target.precision
    int8_graph = precision is Precision.INT8 and runtime in ("onnxruntime", "openvino")
    # OpenVINO below fp32: merge decisions are judged too, with the bounds of that precision.
    reduced = int8_graph or run_precision != "fp32"
    label = str(precision) if int8_graph or run_precision == "fp32" else run_precision
    tolerances = opt.tolerances_for(label, flags)
    with status("loading the graph and its PyTorch reference"):
        ref = target.reference(checkpoint, unsafe_load, ckpt_frames)
    info(f"{ref.loaded.description}; schedule {ref.schedule.spec!r}")
    batches = make_inputs(ref.input_shape, seed, num_inputs, inputs, arch=ref.loaded.arch,
                          **clips.options())  # fmt: skip
    for warning in batches.warnings:
        info(f"warning: {warning}")
    if save_inputs is not None:
        save_arrays(save_inputs, input_arrays(batches))
        info(f"inputs: {save_inputs} (rerun with --load-inputs {save_inputs})")
    with (
        status(f"running {runtime} ({device}) and PyTorch"),
        target.open_runner(
            runtime, device, plugins, merge_inputs=reduced, precision=run_precision
        ) as runner,  # fmt: skip
    ):
        runs = run_validation(runner, ref.loaded, ref.schedule, batches, merge_inputs=reduced)
    result = compare_validation(
        runs, target=str(model), loaded=ref.loaded, schedule=ref.schedule, tolerances=tolerances,
        precision=label, inputs=batches.label, strict_tokens=strict_tokens,
    )  # fmt: skip
    extra: dict = {}
    if reduced:  # as the export judges it: tolerances and merge-decision agreement
        from vidtldr_deploy.validate.int8 import judge_merge_decisions, min_agreement_for

        int8 = judge_merge_decisions(runs, result, ref.schedule, min_agreement_for(label))
        extra = {"merge_decisions": int8.to_dict()["merge_decisions"], "passed": int8.passed}
    show_validation(result)
    if extra:
        show_merge_agreement(extra["merge_decisions"])
    if save_outputs is not None:
        save_arrays(save_outputs, output_arrays(runs))
        info(f"outputs: {save_outputs} ({REFERENCE_PREFIX}<name>: the PyTorch reference)")
    skipped = {"warnings": batches.warnings} if batches.warnings else {}
    write_report_files(report, {**result.to_dict(), "device": device, **skipped, **extra})
    if not extra.get("passed", result.passed):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(guarded(validate_command))
