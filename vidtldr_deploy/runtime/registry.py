"""The runtimes, in one table: what each one reads and how its runner is opened.

Every command opens its runners here (`open_runner`): validate and evaluate through
`Target.open_runner` (target/resolver.py), profile through its preparation of the models it times
(profile/runtimes.py), the export's validation and the INT8 check directly. A runner is only
constructed here; it activates on entering its `with` block (runtime/base.py).

A new runtime is registered here: one `RuntimeEntry` in `RUNNERS` (what it reads, its default
device, the opener that imports its runner module inside the function, as the heavy runtimes are
optional), and `--runtime` accepts it everywhere `check_device` is asked. Profile's own preparation
of the merged and unmerged models it times is one entry in `OPENERS`, profile/runtimes.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidtldr_deploy.constants import MergeImpl
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.runtime.base import Runner

# What a runtime reads, as the target resolver names a target's kind (target.TargetKind values).
MODEL_KINDS = ("demo", "architecture", "checkpoint", "hf-folder")  # a PyTorch model and a schedule
GRAPH = "onnx"  # an exported .onnx graph
ENGINE = "engine"  # a TensorRT .plan with its sidecar
IR = "openvino-ir"  # an OpenVINO .xml (+ .bin) written by vidtldr export


@dataclass(frozen=True)
class ScheduledModel:
    """What the PyTorch runtime runs: a model and the per-layer r to run it with."""

    model: Any  # models.vit.MergeViT
    rs: tuple[int, ...]


@dataclass(frozen=True)
class RunnerOptions:
    """Everything a command chooses about a runner; each runtime reads the options it has."""

    device: str = "cpu"
    threads: int | None = None  # intra-op threads (None: the runtime's default)
    # PyTorch's compute dtype; OpenVINO's inference precision (fp32, bf16, fp16); an ONNX Runtime
    # graph or a TensorRT engine fixes its own.
    precision: str = "fp32"
    plugins: str | Path | None = None  # TensorRT: the plugin library (None: the sidecar's/default)
    merge_inputs: bool = False  # also return the hidden state entering each merge (runtime/base.py)
    merge_impl: MergeImpl | str = MergeImpl.STANDARD  # PyTorch: how merges are computed
    compile_model: bool = False  # PyTorch: torch.compile
    copy_model: bool = (
        True  # PyTorch: a private copy (profiling) or the model in place (validation)
    )
    keep_f32: str | None = None  # OpenVINO: which nodes stay f32 below fp32 (None: its default)
    low_precision_transforms: bool | None = None  # OpenVINO: its INT8 rewrite (None: its choice)


def _torch(source: ScheduledModel, options: RunnerOptions) -> Runner:
    from vidtldr_deploy.runtime.pytorch import TorchRunner

    return TorchRunner(
        source.model, source.rs, options.merge_impl, options.device, options.precision,
        options.compile_model, copy_model=options.copy_model, merge_inputs=options.merge_inputs,
    )  # fmt: skip


def _onnxruntime(source: Path, options: RunnerOptions) -> Runner:
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(
        source, options.device, threads=options.threads, merge_inputs=options.merge_inputs
    )


def _tensorrt(source: Path, options: RunnerOptions) -> Runner:
    from vidtldr_deploy.runtime.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(source, plugin_library=options.plugins)


def _openvino(source: Path, options: RunnerOptions) -> Runner:
    from vidtldr_deploy.runtime.openvino import DEFAULT_KEEP_F32, OpenVinoRunner

    return OpenVinoRunner(
        source, options.device, options.precision, options.threads,
        keep_f32=options.keep_f32 or DEFAULT_KEEP_F32, merge_inputs=options.merge_inputs,
        low_precision_transforms=options.low_precision_transforms,
    )  # fmt: skip


@dataclass(frozen=True)
class RuntimeEntry:
    reads: tuple[
        str, ...
    ]  # the target kinds it runs (the first runtime listing one is its default)
    default_device: str
    open: Callable[[Any, RunnerOptions], Runner]


RUNNERS: dict[str, RuntimeEntry] = {
    "torch": RuntimeEntry(MODEL_KINDS, "cpu", _torch),
    "onnxruntime": RuntimeEntry((GRAPH,), "cpu", _onnxruntime),
    "tensorrt": RuntimeEntry((ENGINE,), "cuda", _tensorrt),
    "openvino": RuntimeEntry((GRAPH, IR), "CPU", _openvino),
}


def open_runner(
    runtime: str, source: ScheduledModel | str | Path, options: RunnerOptions | None = None
) -> Runner:
    """The runner of `runtime` for `source` (a graph or engine path, or a ScheduledModel for
    PyTorch), not yet active: enter it to load. The runtime's module is imported only now."""
    return _entry(runtime).open(source, options or RunnerOptions())


def _entry(runtime: str) -> RuntimeEntry:
    if runtime not in RUNNERS:
        raise InputError(f"--runtime must be one of {', '.join(RUNNERS)}, got {runtime!r}")
    return RUNNERS[runtime]


def default_runtime(kind: str) -> str:
    """The runtime a target of `kind` runs in when none is asked for."""
    return next(name for name, entry in RUNNERS.items() if kind in entry.reads)


def choose_runtime(
    kind: str, runtime: str | None, device: str | None, what: str, fix: str = ""
) -> tuple[str, str]:
    """The runtime and device for a target of `kind` (`what` names it): the one asked for if it
    reads this kind (else refused in one line, `fix` saying what to do), else the default; the
    device asked for, else the runtime's own."""
    default = default_runtime(kind)
    runtime = runtime or default
    if kind not in _entry(runtime).reads:
        raise InputError(f"{what} runs in {default}, not {runtime}" + (f": {fix}" if fix else ""))
    return runtime, device or RUNNERS[runtime].default_device
