"""Latency profiling (docs/design.md, "Profiling"): the merged model against its unmerged baseline,
same runtime, same inputs, timed interleaved so that drift (clocks, thermals, other processes) hits
both; speedup = baseline median / merged median, next to the ideal from FLOPs.

Every runtime arrives as a pair of Runners (profile/runtimes.py): the loop times `timed_step`s, and
the per-part breakdown comes from each runner's own instrumentation in a separate pass afterwards,
so instrumentation never touches the latency numbers.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import OPENVINO_PRECISIONS, MergeImpl, Precision
from vidtldr_deploy.core.flops import count_flops
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.profile.result import ModelLatency, ProfileResult
from vidtldr_deploy.profile.runtimes import OPENERS, merge_impl_for, unmerged_like
from vidtldr_deploy.profile.stats import latency_stats
from vidtldr_deploy.profile.timing import PhaseCallback, TimedModel, interleaved_timing, no_progress
from vidtldr_deploy.profile.warnings import gain_warnings, timing_warnings
from vidtldr_deploy.runtime.devices import check_device, environment

MODELS = ("merged", "baseline")  # measured in this order on even iterations, reversed on odd ones


@dataclass
class ProfileSettings:
    runtime: str = "torch"
    device: str = "cpu"
    batch: int = 1
    iterations: int = 50
    warmup: int = 10
    precision: str = "fp32"
    merge_impl: str | None = None  # torch: custom_op|reference; ONNX/TensorRT export: plugin|onnx
    compile: bool = False  # torch.compile (torch runtime)
    layers: bool = True  # the per-layer pass after timing
    layer_iterations: int = 3
    seed: int = 0
    calib: list[Path] | None = None  # INT8 calibration clips
    duration: float | None = None  # seconds of timing at least (trtexec --duration); None: off
    threads: int | None = None  # torch intra-op threads and ORT intra_op_num_threads; None: default

    def resolved_merge_impl(self) -> MergeImpl:
        return merge_impl_for(self.runtime, self.merge_impl)

    def check(self) -> None:
        if self.runtime == "openvino":
            if self.precision not in OPENVINO_PRECISIONS:
                raise InputError(
                    f"--runtime openvino profiles {', '.join(OPENVINO_PRECISIONS)}, got "
                    f"--precision {self.precision!r}"
                )
        else:
            Precision.parse(self.precision)
        if self.runtime == "onnxruntime" and self.precision not in ("fp32", "int8"):
            raise InputError(
                "--runtime onnxruntime runs exported graphs in fp32 or INT8 Q/DQ: use --precision "
                "fp32 or int8, or --runtime torch / tensorrt for fp16"
            )
        if self.precision == "int8" and self.runtime != "onnxruntime":
            raise InputError(
                "--precision int8 profiles INT8 Q/DQ graphs in ONNX Runtime: use --runtime onnxruntime "
                "(a TensorRT INT8 engine: export it with --precision int8 -o x.plan, then profile x.plan)"
            )
        if self.calib and self.precision != "int8":
            raise InputError("--calib applies to --precision int8 only")
        if self.compile and self.runtime != "torch":
            raise InputError("--compile applies to --runtime torch only")
        if self.batch < 1:
            raise InputError(f"--batch must be at least 1, got {self.batch}")
        if self.iterations < 1:
            raise InputError(f"--iterations must be at least 1, got {self.iterations}")
        if self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        if self.duration is not None and self.duration <= 0:
            raise InputError(f"--duration must be positive seconds, got {self.duration}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        check_device(self.runtime, self.device)
        self.resolved_merge_impl()


@dataclass
class ProfileInputs:
    """What to profile: the model and schedule, and where they already exist as files."""

    loaded: LoadedModel
    schedule: MergeSchedule
    target: str
    merged_onnx: Path | None = None  # an exported graph (used as is for onnxruntime/tensorrt)
    merged_plan: Path | None = None
    baseline_plan: Path | None = None
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads for the block, restored after it (a library must not leave the
    process changed); None leaves torch's default."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _environment(settings: ProfileSettings) -> dict:
    env = environment(settings.device)
    env["threads"] = settings.threads  # None: each runtime's default
    if settings.runtime in ("onnxruntime", "openvino"):
        env["onnxruntime_intra_op_threads"] = settings.threads or "default"
    if settings.runtime == "openvino":
        from vidtldr_deploy.runtime.openvino import openvino_device

        env["openvino_device"] = openvino_device(settings.device)
        env["openvino_inference_num_threads"] = settings.threads or "default"
    return env


def run_profile(
    inputs: ProfileInputs, settings: ProfileSettings, progress: PhaseCallback = no_progress
) -> ProfileResult:
    """Time the merged model and its unmerged baseline interleaved and return the profile."""
    settings.check()
    loaded, schedule = inputs.loaded, inputs.schedule
    impl = settings.resolved_merge_impl()
    side = loaded.model.cfg.img_size
    shape = (settings.batch, 3, loaded.frames, side, side)
    gen = torch.Generator().manual_seed(settings.seed)
    video = torch.randn(shape, generator=gen).numpy()
    merged_rows, unmerged_rows = (
        schedule.to_dict()["layers"],
        unmerged_like(schedule).to_dict()["layers"],
    )
    breakdown: dict = {}
    notes: list[str] = []

    with (
        tempfile.TemporaryDirectory(prefix="vidtldr-profile-") as tmp,
        torch_threads(settings.threads),
    ):
        workdir = Path(tmp)
        runners = OPENERS[settings.runtime](inputs, settings, impl, workdir, progress)
        with contextlib.ExitStack() as active:
            for runner in runners.values():
                active.enter_context(runner)
            cands = [
                TimedModel(label, runners[label].timed_step(video), runners[label].before_timed,
                           runners[label].after_timed, runners[label].peak_memory_mb)
                for label in runners
            ]  # fmt: skip
            times = interleaved_timing(cands, settings.iterations, settings.warmup, progress,
                                       settings.duration)  # fmt: skip
            if settings.layers:
                advance = progress("per-layer pass", len(runners))
                for label in runners:
                    rows = merged_rows if label == "merged" else unmerged_rows
                    found = runners[label].breakdown(
                        video, rows, settings.layer_iterations, workdir
                    )
                    if found is None:
                        notes.append(f"the {settings.runtime} runner exposes no per-layer profiler")
                    elif settings.compile:
                        found.note = (
                            "measured on the eager model (hooks do not see inside torch.compile)"
                        )
                    breakdown[label] = found
                    advance()
        env = _environment(settings)  # inside the block: the thread count the timing ran with

    flops = count_flops(loaded.model.cfg, loaded.frames, schedule, settings.batch)
    latencies = {}
    for c in cands:
        latencies[c.label] = ModelLatency(
            stats=latency_stats(times[c.label], settings.batch),
            samples_ms=[t * 1e3 for t in times[c.label]],
            peak_memory_mb=c.peak_memory(),
            rss_delta_mb=c.rss_delta_mb if settings.device == "cpu" else None,
            breakdown=breakdown.get(c.label),
        )
    speedup = latencies["baseline"].median_ms / latencies["merged"].median_ms
    tokens = schedule.layers[0].tokens_in if schedule.layers else 0
    warnings = timing_warnings({k: v.samples_ms for k, v in latencies.items()})
    warnings += gain_warnings(flops.speedup, speedup, tokens)
    if impl is MergeImpl.CUSTOM and settings.runtime == "torch":
        from vidtldr_deploy.runtime import torch_cuda_ops

        inputs.extra.setdefault("fast_path", torch_cuda_ops.status())
    return ProfileResult(
        target=inputs.target,
        runtime=settings.runtime,
        device=settings.device,
        arch=loaded.name,
        source=loaded.label,
        frames=loaded.frames,
        batch=settings.batch,
        precision=settings.precision,
        merge_impl=impl.model_name if settings.runtime == "torch" else impl.export_name,
        compile=settings.compile,
        input_shape=list(shape),
        iterations=min(len(times["merged"]), len(times["baseline"])),
        warmup=settings.warmup,
        duration_s=settings.duration,
        inputs=f"one seeded random clip batch (seed {settings.seed})",
        merged=latencies["merged"],
        baseline=latencies["baseline"],
        more={k: v for k, v in latencies.items() if k not in MODELS},
        flops=flops,
        schedule=schedule.to_dict(),
        environment=env,
        extra=dict(inputs.extra),
        notes=sorted(set(notes)),
        warnings=warnings,
        toolkit_version=__version__,
    )
