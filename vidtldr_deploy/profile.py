"""Latency profiling (DESIGN.md, "Validation and profiling"): the merged model against its unmerged
baseline, same runtime, same inputs, measured interleaved so that drift (clocks, thermals, other
processes) hits both; speedup = baseline median / merged median, next to the ideal from FLOPs.

Runtimes: PyTorch (eager or torch.compile; the fast GPU path runs saliency and merge through the
`vidtldr` custom ops, see backends/torch_cuda_ops.py), ONNX Runtime (CPU or CUDA EP) and TensorRT.
Per-layer times come from a separate pass after the timed loop, so that instrumentation never
touches the latency numbers: forward hooks (PyTorch), session profiling (ONNX Runtime), the
runner's layer profiler (TensorRT, where it offers one).

The report is a plain dict (JSON is the source of truth; reports.to_markdown renders it).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidtldr_deploy import __version__
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.config import PRECISIONS
from vidtldr_deploy.export.onnx_export import MERGE_IMPLS as EXPORT_MERGE_IMPLS
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.models.vit import MERGE_IMPLS as VIT_MERGE_IMPLS

RUNTIMES = ("torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
TORCH_MERGE_IMPLS = VIT_MERGE_IMPLS
ONNX_MERGE_IMPLS = EXPORT_MERGE_IMPLS
STATS = ("mean", "median", "p90", "p99", "min", "max")
MODELS = ("merged", "baseline")  # measured in this order on even iterations, reversed on odd ones


# --------------------------------------------------------------------------------------------
# Statistics


def latency_stats(seconds: Sequence[float], batch: int = 1) -> dict:
    """Latency statistics of per-iteration wall times in seconds.

    Returns {"latency_ms": {mean, median, p90, p99, min, max}, "throughput": clips/s (batch / mean
    seconds), "iterations": n}. Percentiles interpolate linearly between samples, so
    min <= median <= p90 <= p99 <= max always holds.
    """
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError("latency_stats needs at least one timing")
    if not np.all(np.isfinite(ms)) or np.any(ms < 0):
        raise ValueError("timings must be finite and non-negative")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    lat = {
        "mean": mean,
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }
    throughput = batch / (mean / 1e3) if mean > 0 else float("inf")
    return {"latency_ms": lat, "throughput": throughput, "iterations": int(ms.size)}


def speedup(baseline: dict, merged: dict) -> float:
    """Baseline median over merged median (> 1: merging is faster)."""
    return baseline["latency_ms"]["median"] / merged["latency_ms"]["median"]


# --------------------------------------------------------------------------------------------
# Timing


@dataclass
class Candidate:
    """One model to time: `step` runs one batch to completion (synchronised)."""

    label: str
    step: Callable[[], object]
    before: Callable[[], None] | None = None  # outside the timed window (e.g. reset peak memory)
    after: Callable[[], None] | None = None
    peak_memory: Callable[[], float | None] = lambda: None  # MiB, where the runtime tells it
    close: Callable[[], None] | None = None
    rss_delta_mb: float | None = None


Advance = Callable[[], None]
PhaseCallback = Callable[[str, int], Advance]  # (description, total steps) -> advance()


def _no_progress(description: str, total: int) -> Advance:
    return lambda: None


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def interleaved_timing(
    candidates: Sequence[Candidate],
    iterations: int,
    warmup: int,
    progress: PhaseCallback = _no_progress,
) -> dict[str, list[float]]:
    """Warm each candidate up, then time them interleaved: iteration i runs every candidate once,
    in order on even i and reversed on odd i (ABBA), so slow drift and order effects cancel.

    Returns the wall times in seconds per label. The RSS growth over each candidate's first
    warm-up call is stored on it as `rss_delta_mb` (where RSS can be read).
    """
    if iterations < 1:
        raise VidTLDRError(f"--iterations must be at least 1, got {iterations}")
    if warmup < 0:
        raise VidTLDRError(f"--warmup must be >= 0, got {warmup}")
    advance = progress("warm-up", max(1, warmup) * len(candidates))
    for c in candidates:
        before = rss_bytes()
        for i in range(max(1, warmup)):  # at least one call: first-call costs never get timed
            c.step()
            if i == 0 and before is not None:
                now = rss_bytes()
                c.rss_delta_mb = None if now is None else (now - before) / 2**20
            advance()
    times: dict[str, list[float]] = {c.label: [] for c in candidates}
    advance = progress("timing (interleaved)", iterations * len(candidates))
    for i in range(iterations):
        order = candidates if i % 2 == 0 else list(reversed(candidates))
        for c in order:
            if c.before:
                c.before()
            t0 = time.perf_counter()
            c.step()
            times[c.label].append(time.perf_counter() - t0)
            if c.after:
                c.after()
            advance()
    return times


# --------------------------------------------------------------------------------------------
# PyTorch


def check_device(runtime: str, device: str) -> None:
    """Refuse a device the runtime cannot use here, saying what to install or choose instead."""
    if runtime not in RUNTIMES:
        raise VidTLDRError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if device not in DEVICES:
        raise VidTLDRError(f"--device must be cpu or cuda, got {device!r}")
    if runtime == "torch" and device == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise VidTLDRError(
            f"--device cuda: PyTorch sees no CUDA device (torch {torch.__version__}, {build}); "
            "run on a machine with an NVIDIA GPU and a CUDA build of PyTorch, or use --device cpu"
        )
    if runtime == "onnxruntime" and device == "cuda":
        import onnxruntime as ort

        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise VidTLDRError(
                f"--runtime onnxruntime --device cuda needs the CUDA execution provider, but this "
                f"ONNX Runtime has only {', '.join(available)}: install onnxruntime-gpu "
                "(pip install 'vidtldr-deploy[gpu]') or use --device cpu"
            )
    if runtime == "tensorrt":
        if device != "cuda":
            raise VidTLDRError("--runtime tensorrt runs on the GPU only: use --device cuda")
        from vidtldr_deploy.backends.tensorrt import require_tensorrt

        require_tensorrt()


def _torch_dtype(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16}[precision]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def prepare_torch_model(
    model: torch.nn.Module, rs: Sequence[int], device: str, precision: str, merge_impl: str
) -> torch.nn.Module:
    """A copy of `model` on `device` in `precision` with schedule `rs` (all zeros: the baseline).

    merge_impl "custom_op" routes saliency and merge through the `vidtldr` torch custom ops, whose
    CUDA implementations call the streaming CUDA kernels where the kernel library is available
    (backends/torch_cuda_ops.py); on CPU they run the reference maths.
    """
    if merge_impl not in TORCH_MERGE_IMPLS:
        raise VidTLDRError(
            f"--merge-impl for --runtime torch must be one of {', '.join(TORCH_MERGE_IMPLS)}, got {merge_impl!r}"
        )
    if merge_impl == "custom_op":
        from vidtldr_deploy.backends import torch_cuda_ops

        torch_cuda_ops.register()
    m = copy.deepcopy(model).to(device=device, dtype=_torch_dtype(precision)).eval()
    m.set_schedule(list(rs), merge_impl)
    return m


def _torch_candidate(
    label: str, model: torch.nn.Module, video: torch.Tensor, device: str, compile_model: bool
) -> Candidate:
    fn = torch.compile(model) if compile_model else model
    peak = {"mib": None}

    def step():
        with torch.inference_mode():
            out = fn(video)
        _sync(device)
        return out

    before = after = None
    if device == "cuda":

        def before():
            torch.cuda.reset_peak_memory_stats()

        def after():
            mib = torch.cuda.max_memory_allocated() / 2**20
            peak["mib"] = mib if peak["mib"] is None else max(peak["mib"], mib)

    return Candidate(label, step, before, after, peak_memory=lambda: peak["mib"])


class _RangeTimer:
    """Named time ranges: wall clock on CPU, CUDA events on the GPU (resolved after a sync)."""

    def __init__(self, device: str):
        self.device = device
        self.open: dict[str, object] = {}
        self.done: list[tuple[str, object, object]] = []

    def _mark(self):
        if self.device == "cuda":
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def start(self, name: str) -> None:
        self.open[name] = (self._mark(), torch.autograd.profiler.record_function(name))
        self.open[name][1].__enter__()

    def stop(self, name: str) -> None:
        mark, rf = self.open.pop(name)
        rf.__exit__(None, None, None)
        self.done.append((name, mark, self._mark()))

    def totals_ms(self) -> dict[str, float]:
        _sync(self.device)
        out: dict[str, float] = {}
        for name, a, b in self.done:
            ms = a.elapsed_time(b) if self.device == "cuda" else (b - a) * 1e3
            out[name] = out.get(name, 0.0) + ms
        return out


@contextlib.contextmanager
def _instrumented(model, timer: _RangeTimer):
    """Time the model's parts by name with forward hooks: each block's attention, saliency and merge
    steps and MLP (MergeViT keeps each as a submodule), removed when the pass ends."""
    handles = []

    def hook(name):
        def pre(mod, args):
            timer.start(name)

        def post(mod, args, out):
            timer.stop(name)

        return pre, post

    parts = [("forward", model), ("patch_embed", model.patch_embed)]
    for i, blk in enumerate(model.blocks):
        parts += [(f"block.{i}", blk), (f"block.{i}.attention", blk.attn), (f"block.{i}.mlp", blk.mlp),
                  (f"block.{i}.saliency", blk.saliency), (f"block.{i}.merge", blk.merge)]  # fmt: skip
    for name, mod in parts:
        pre, post = hook(name)
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


PARTS = ("attention", "saliency", "merge", "mlp", "other")


def _summarise(per_layer: list[dict], total: float, patch_embed: float, source: str, note: str = "") -> dict:
    parts = {p: sum(row.get(p, 0.0) for row in per_layer) for p in PARTS}
    parts["patch_embed"] = patch_embed
    parts["head"] = max(0.0, total - patch_embed - sum(row["ms"] for row in per_layer))
    parts["total"] = total
    out = {
        "source": source,
        "unit": "ms per batch",
        "parts": parts,
        "merge_share": (parts["saliency"] + parts["merge"]) / total if total > 0 else 0.0,
        "layers": per_layer,
    }
    if note:
        out["note"] = note
    return out


def torch_breakdown(
    model: torch.nn.Module,
    video: torch.Tensor,
    schedule_rows: Sequence[dict],
    device: str,
    iterations: int = 5,
    top_ops: int = 12,
) -> dict:
    """Per-layer times of an (eager) MergeViT: attention, saliency, merge, MLP and the rest of each
    block (norms, residuals), plus the top aten/custom ops by self time from torch.profiler."""
    timer = _RangeTimer(device)
    with torch.inference_mode():
        model(video)  # warm
        _sync(device)
        with _instrumented(model, timer):
            for _ in range(iterations):
                model(video)
        totals = {k: v / iterations for k, v in timer.totals_ms().items()}
    per_layer = []
    for i, row in enumerate(schedule_rows):
        block = totals.get(f"block.{i}", 0.0)
        entry = {
            "layer": i,
            "tokens_in": row["tokens_in"],
            "r": row["r"],
            "tokens_out": row["tokens_out"],
            "ms": block,
        }
        for p in ("attention", "saliency", "merge", "mlp"):
            entry[p] = totals.get(f"block.{i}.{p}", 0.0)
        entry["other"] = max(0.0, block - sum(entry[p] for p in ("attention", "saliency", "merge", "mlp")))
        per_layer.append(entry)
    out = _summarise(per_layer, totals.get("forward", 0.0), totals.get("patch_embed", 0.0), "torch forward hooks")
    out["ops"] = _torch_top_ops(model, video, device, top_ops)
    return out


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Silence file descriptor 2 (the profiler's C++ side prints status lines there)."""
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _torch_top_ops(model, video, device: str, top: int) -> list[dict]:
    """The ops with the most self time per batch (torch.profiler), our custom ops included."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    runs = 2
    try:
        with _quiet_stderr_fd(), torch.inference_mode(), profile(activities=activities) as prof:
            for _ in range(runs):
                model(video)
            _sync(device)
    except Exception:  # the profiler is best effort: no per-op table rather than no report
        return []
    rows = []
    for ev in prof.key_averages():
        if device == "cuda":
            us = getattr(ev, "self_device_time_total", None) or getattr(ev, "self_cuda_time_total", 0)
        else:
            us = ev.self_cpu_time_total
        if us > 0:
            rows.append({"name": ev.key, "ms": us / 1e3 / runs, "calls": ev.count // runs})
    rows.sort(key=lambda r: -r["ms"])
    return rows[:top]


# --------------------------------------------------------------------------------------------
# ONNX Runtime


def _ort_candidate(label: str, path: Path, video: np.ndarray, device: str) -> Candidate:
    from vidtldr_deploy.backends.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, device)
    return Candidate(label, lambda: runner.run(video))


MERGE_FUNCTIONS = ("Saliency", "Merge")  # local functions ORT inlines as _inlfunc_<name>_*


def merge_step_nodes(model_path: Path) -> dict[str, str]:
    """Graph node name -> "Saliency" / "Merge" for the standard-op nodes exported from a block's
    SaliencyStep / MergeStep (torch.onnx records each node's module classes in its metadata), so a
    `--merge-impl onnx` graph's merge steps can be timed too."""
    import onnx

    from vidtldr_deploy.models.vit import MergeStep, SaliencyStep

    classes = {"Saliency": SaliencyStep, "Merge": MergeStep}
    marks = {part: f"'{cls.__module__}.{cls.__qualname__}'" for part, cls in classes.items()}
    parts: dict[str, str] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.class_hierarchy":
                part = next((p for p, mark in marks.items() if mark in prop.value), None)
                if part is not None:
                    parts[node.name] = part
    return parts


def parse_ort_profile(events: list[dict], skip_runs: int = 1, node_parts: dict[str, str] | None = None) -> dict:
    """Sum an ONNX Runtime session profile per op type (ms per run), skipping the first
    `skip_runs` runs; nodes inlined from the `vidtldr` Saliency / Merge functions, and nodes that
    `node_parts` (merge_step_nodes) names, are also summed as the merge subgraph. Nodes that ONNX
    Runtime fused under a new name are not attributed."""
    node_parts = node_parts or {}
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    if not runs:
        return {"by_op_type": {}, "merge_subgraph": {}, "nodes_ms": 0.0, "runs": 0}
    start = runs[skip_runs][0] if len(runs) > skip_runs else runs[0][0]
    counted = len(runs) - skip_runs if len(runs) > skip_runs else len(runs)
    by_op: dict[str, float] = {}
    sub = {name: 0.0 for name in MERGE_FUNCTIONS}
    total = 0.0
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < start:
            continue
        ms = e["dur"] / 1e3
        op = e.get("args", {}).get("op_name", "?")
        by_op[op] = by_op.get(op, 0.0) + ms
        total += ms
        inlined = next((name for name in MERGE_FUNCTIONS if e["name"].startswith(f"_inlfunc_{name}_")), None)
        part = inlined or node_parts.get(e["name"][: -len("_kernel_time")])
        if part is not None:
            sub[part] += ms
    per_run = {k: v / counted for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
    return {
        "by_op_type": per_run,
        "merge_subgraph": {k: v / counted for k, v in sub.items()},
        "nodes_ms": total / counted,
        "runs": counted,
    }


def ort_breakdown(path: Path, video: np.ndarray, device: str, iterations: int, workdir: Path) -> dict:
    """Per-op-type times from an ONNX Runtime session profile (its own session, after timing)."""
    from vidtldr_deploy.backends.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, device, profile_prefix=str(workdir / f"ort_{Path(path).stem}"))
    for _ in range(iterations + 1):
        runner.run(video)
    trace = runner.end_profiling()
    with open(trace) as f:
        parsed = parse_ort_profile(json.load(f), skip_runs=1, node_parts=merge_step_nodes(Path(path)))
    sal, mer = parsed["merge_subgraph"]["Saliency"], parsed["merge_subgraph"]["Merge"]
    total = parsed["nodes_ms"]
    parts = {"saliency": sal, "merge": mer, "other": max(0.0, total - sal - mer), "total": total}
    out = {
        "source": "onnxruntime session profiling (sum of node kernel times)",
        "unit": "ms per batch",
        "parts": parts,
        "merge_share": (sal + mer) / total if total > 0 else 0.0,
        "ops": [{"name": k, "ms": v} for k, v in parsed["by_op_type"].items()],
    }
    if not any(parsed["merge_subgraph"].values()):
        out["note"] = (
            "saliency/merge are not attributable in this graph (neither vidtldr functions nor "
            "torch.onnx module metadata on its nodes)"
        )
    return out


def export_temp_onnx(
    loaded: LoadedModel, schedule: MergeSchedule, batch: int, merge_impl: str, path: Path
) -> Path:
    from vidtldr_deploy.export.onnx_export import ExportSpec, export_onnx

    spec = ExportSpec(
        arch=loaded.arch, frames=loaded.frames, batch=batch, schedule=schedule, merge_impl=merge_impl,
        checkpoint_sha256=loaded.sha256, checkpoint=loaded.label,
    )  # fmt: skip
    saved = (list(loaded.model.rs), loaded.model.merge_impl)
    try:
        export_onnx(loaded.model, spec, path)
    finally:
        loaded.model.set_schedule(*saved)
    return path


# --------------------------------------------------------------------------------------------
# TensorRT (through backends/tensorrt.py only)


def _trt_runner(plan: Path, video: np.ndarray, label: str) -> Candidate:
    from vidtldr_deploy.backends import tensorrt as trt_backend

    runner_cls = getattr(trt_backend, "TensorRTRunner", None)
    if runner_cls is None:
        raise VidTLDRError("this vidtldr-deploy has no TensorRT runner yet (backends/tensorrt.py)")
    runner = runner_cls(plan)
    cand = Candidate(label, lambda: runner.run(video))
    cand.runner = runner  # type: ignore[attr-defined]
    return cand


def build_temp_engine(onnx_path: Path, plan_path: Path, precision: str) -> Path:
    """Build an engine with backends.tensorrt.build_engine(onnx, plan, precision=...)."""
    from vidtldr_deploy.backends import tensorrt as trt_backend

    build = getattr(trt_backend, "build_engine", None)
    if build is None:
        raise VidTLDRError(
            "cannot build the unmerged baseline engine here (backends.tensorrt has no build_engine): "
            "build it with `vidtldr export ... --schedule none -o base.plan` and pass --baseline base.plan"
        )
    build(onnx_path, plan_path, precision=precision)
    return plan_path


def trt_breakdown(candidate: Candidate) -> dict | None:
    """Per-layer times from the TensorRT runner, where it offers `layer_times() -> {layer: ms}`."""
    fn = getattr(getattr(candidate, "runner", None), "layer_times", None)
    if fn is None:
        return None
    times = dict(fn())
    total = sum(times.values())
    sal = sum(v for k, v in times.items() if "saliency" in k.lower())
    mer = sum(v for k, v in times.items() if "merge" in k.lower())
    return {
        "source": "TensorRT IProfiler",
        "unit": "ms per batch",
        "parts": {"saliency": sal, "merge": mer, "other": total - sal - mer, "total": total},
        "merge_share": (sal + mer) / total if total else 0.0,
        "ops": [{"name": k, "ms": v} for k, v in sorted(times.items(), key=lambda kv: -kv[1])],
    }


# --------------------------------------------------------------------------------------------
# The profile


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

    def resolved_merge_impl(self) -> str:
        if self.runtime == "torch":
            impl = self.merge_impl or "custom_op"
            allowed = TORCH_MERGE_IMPLS
        else:
            impl = self.merge_impl or "plugin"
            allowed = ONNX_MERGE_IMPLS
        if impl not in allowed:
            raise VidTLDRError(
                f"--merge-impl for --runtime {self.runtime} must be one of {', '.join(allowed)}, got {impl!r}"
            )
        return impl

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise VidTLDRError(f"--precision must be fp32 or fp16, got {self.precision!r}")
        if self.runtime == "onnxruntime" and self.precision != "fp32":
            raise VidTLDRError(
                "--runtime onnxruntime runs the exported fp32 graph: use --precision fp32, or "
                "--runtime torch / tensorrt for fp16"
            )
        if self.compile and self.runtime != "torch":
            raise VidTLDRError("--compile applies to --runtime torch only")
        if self.batch < 1:
            raise VidTLDRError(f"--batch must be at least 1, got {self.batch}")
        if self.iterations < 1:
            raise VidTLDRError(f"--iterations must be at least 1, got {self.iterations}")
        if self.warmup < 0:
            raise VidTLDRError(f"--warmup must be >= 0, got {self.warmup}")
        self.resolved_merge_impl()
        check_device(self.runtime, self.device)


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


def environment(device: str) -> dict:
    env = {
        "toolkit_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
    except ImportError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    return env


def run_profile(
    inputs: ProfileInputs, settings: ProfileSettings, progress: PhaseCallback = _no_progress
) -> dict:
    """Time the merged model and its unmerged baseline interleaved and return the profile report."""
    settings.check()
    loaded, schedule = inputs.loaded, inputs.schedule
    model = loaded.model
    impl = settings.resolved_merge_impl()
    side = model.cfg.img_size
    shape = (settings.batch, 3, loaded.frames, side, side)
    gen = torch.Generator().manual_seed(settings.seed)
    clip = torch.randn(shape, generator=gen)
    baseline_rs = [0] * len(schedule.rs)
    breakdown: dict[str, dict | None] = {"merged": None, "baseline": None}
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="vidtldr-profile-") as tmp:
        workdir = Path(tmp)
        if settings.runtime == "torch":
            video = clip.to(settings.device, _torch_dtype(settings.precision))
            models = {
                "merged": prepare_torch_model(model, schedule.rs, settings.device, settings.precision, impl),
                "baseline": prepare_torch_model(model, baseline_rs, settings.device, settings.precision, impl),
            }
            cands = [_torch_candidate(k, models[k], video, settings.device, settings.compile) for k in MODELS]
            if impl == "custom_op":
                from vidtldr_deploy.backends import torch_cuda_ops

                inputs.extra.setdefault("fast_path", torch_cuda_ops.status())
        elif settings.runtime == "onnxruntime":
            video = clip.numpy()
            merged_path = inputs.merged_onnx
            if merged_path is None:
                done = progress(f"exporting the merged model to ONNX ({impl} merge)", 1)
                merged_path = export_temp_onnx(loaded, schedule, settings.batch, impl, workdir / "merged.onnx")
                done()
            done = progress("exporting the unmerged baseline to ONNX", 1)
            base_path = export_temp_onnx(loaded, _unmerged(schedule), settings.batch, "onnx", workdir / "baseline.onnx")
            done()
            paths = {"merged": Path(merged_path), "baseline": base_path}
            cands = [_ort_candidate(k, paths[k], video, settings.device) for k in MODELS]
        else:  # tensorrt
            video = clip.numpy()
            plans = {"merged": inputs.merged_plan, "baseline": inputs.baseline_plan}
            if plans["merged"] is None:
                merged_path = inputs.merged_onnx or export_temp_onnx(
                    loaded, schedule, settings.batch, impl, workdir / "merged.onnx"
                )
                progress("building the merged TensorRT engine", 1)
                plans["merged"] = build_temp_engine(Path(merged_path), workdir / "merged.plan", settings.precision)
            if plans["baseline"] is None:
                base_onnx = export_temp_onnx(loaded, _unmerged(schedule), settings.batch, "onnx", workdir / "baseline.onnx")
                progress("building the unmerged TensorRT engine", 1)
                plans["baseline"] = build_temp_engine(base_onnx, workdir / "baseline.plan", settings.precision)
            cands = [_trt_runner(Path(plans[k]), video, k) for k in MODELS]

        times = interleaved_timing(cands, settings.iterations, settings.warmup, progress)

        if settings.layers:
            advance = progress("per-layer pass", 2)
            for c in cands:
                if settings.runtime == "torch":
                    breakdown[c.label] = torch_breakdown(
                        models[c.label], video, schedule.to_dict()["layers"] if c.label == "merged"
                        else _unmerged(schedule).to_dict()["layers"], settings.device,
                        settings.layer_iterations,
                    )  # fmt: skip
                    if settings.compile:
                        breakdown[c.label]["note"] = "measured on the eager model (hooks do not see inside torch.compile)"
                elif settings.runtime == "onnxruntime":
                    breakdown[c.label] = ort_breakdown(paths[c.label], video, settings.device, settings.layer_iterations, workdir)
                else:
                    breakdown[c.label] = trt_breakdown(c)
                    if breakdown[c.label] is None:
                        notes.append("the TensorRT runner exposes no per-layer profiler")
                advance()

    from vidtldr_deploy.core.flops import count_flops

    flops = count_flops(model.cfg, loaded.frames, schedule, settings.batch)
    report: dict = {
        "kind": "profile",
        "toolkit_version": __version__,
        "target": inputs.target,
        "runtime": settings.runtime,
        "device": settings.device,
        "arch": loaded.arch,
        "source": loaded.label,
        "frames": loaded.frames,
        "batch": settings.batch,
        "precision": settings.precision,
        "merge_impl": impl,
        "compile": settings.compile,
        "input_shape": list(shape),
        "iterations": settings.iterations,
        "warmup": settings.warmup,
        "timing": "interleaved (ABBA): merged and baseline alternate every iteration on the same input",
        "inputs": f"one seeded random clip batch (seed {settings.seed})",
    }
    for c in cands:
        entry = latency_stats(times[c.label], settings.batch)
        entry["samples_ms"] = [t * 1e3 for t in times[c.label]]
        entry["peak_memory_mb"] = c.peak_memory()
        entry["rss_delta_mb"] = c.rss_delta_mb if settings.device == "cpu" else None
        if breakdown[c.label] is not None:
            entry["breakdown"] = breakdown[c.label]
        report[c.label] = entry
    report["speedup"] = speedup(report["baseline"], report["merged"])
    report["flops"] = {
        "merged": flops.merged,
        "baseline": flops.baseline,
        "ratio": flops.ratio,
        "ideal_speedup": flops.speedup,
    }
    report["speedup_vs_ideal"] = report["speedup"] / flops.speedup
    report["schedule"] = schedule.to_dict()
    report["environment"] = environment(settings.device)
    report.update(inputs.extra)
    if notes:
        report["notes"] = sorted(set(notes))
    for c in cands:
        if c.close:
            c.close()
    return report


def _unmerged(schedule: MergeSchedule) -> MergeSchedule:
    from vidtldr_deploy.core.schedule import unmerged_schedule

    n = schedule.layers[0].tokens_in if schedule.layers else 0
    return unmerged_schedule(len(schedule.layers), n)


# --------------------------------------------------------------------------------------------
# Rendering


def plot_profile(report: dict, path: str | Path) -> Path:
    """PNG: latency distribution of both models (left) and tokens per layer (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from vidtldr_deploy.files import atomic_output

    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    data = [report[k].get("samples_ms", []) for k in ("baseline", "merged")]
    parts = ax1.violinplot(data, showmedians=True)
    for body, color in zip(parts["bodies"], ("tab:gray", "tab:blue")):
        body.set_facecolor(color)
    ax1.set_xticks([1, 2], ["unmerged", "merged"])
    ax1.set_ylabel("latency per batch (ms)")
    ax1.set_title(
        f"{report['runtime']} {report['device']} {report['precision']}, batch {report['batch']}: "
        f"{report['speedup']:.2f}x (ideal {report['flops']['ideal_speedup']:.2f}x)",
        fontsize=9,
    )
    layers = report["schedule"]["layers"]
    xs = [row["layer"] for row in layers]
    ax2.step(xs, [row["tokens_in"] for row in layers], where="post", label="merged (tokens in)", color="tab:blue")
    ax2.plot(xs, [layers[0]["tokens_in"]] * len(xs) if layers else [], "--", color="tab:gray", label="unmerged")
    ax2.set_xlabel("layer")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("tokens")
    ax2.set_ylim(bottom=0)
    ax2.set_title(f"tokens per layer, schedule {report['schedule']['spec']!r}", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def latency_table(report: dict):
    from rich.table import Table

    table = Table(title=f"latency: {report['runtime']} on {report['device']}, {report['precision']}, batch {report['batch']} (interleaved)")
    for h in ["model", *[f"{s} ms" for s in STATS], "clips/s", "peak MiB"]:
        table.add_column(h, justify="left" if h == "model" else "right")
    for key, label in (("baseline", "unmerged"), ("merged", "merged")):
        r = report[key]
        mem = r.get("peak_memory_mb")
        if mem is None and r.get("rss_delta_mb") is not None:
            mem_text = f"RSS +{r['rss_delta_mb']:.0f}"
        else:
            mem_text = "-" if mem is None else f"{mem:.0f}"
        table.add_row(label, *[f"{r['latency_ms'][s]:.3f}" for s in STATS], f"{r['throughput']:.2f}", mem_text)
    return table


def layer_table(report: dict):
    """Per-layer token table with the measured block times of both models."""
    from rich.table import Table

    table = Table(title="per layer (ms per batch)")
    heads = ["layer", "tokens in", "r", "tokens out", "merged ms", "of which saliency+merge", "unmerged ms"]
    for h in heads:
        table.add_column(h, justify="right")
    m = (report["merged"].get("breakdown") or {}).get("layers")
    b = (report["baseline"].get("breakdown") or {}).get("layers")
    for i, row in enumerate(report["schedule"]["layers"]):
        cells = [str(row["layer"]), str(row["tokens_in"]), str(row["r"]), str(row["tokens_out"])]
        if m and b:
            cells += [f"{m[i]['ms']:.3f}", f"{m[i]['saliency'] + m[i]['merge']:.3f}", f"{b[i]['ms']:.3f}"]
        else:
            cells += ["-", "-", "-"]
        table.add_row(*cells)
    return table


def parts_table(report: dict):
    from rich.table import Table

    table = Table(title="where the time goes (ms per batch, separate instrumented pass)")
    table.add_column("part")
    table.add_column("merged", justify="right")
    table.add_column("unmerged", justify="right")
    m = (report["merged"].get("breakdown") or {}).get("parts", {})
    b = (report["baseline"].get("breakdown") or {}).get("parts", {})
    for key in [k for k in ("patch_embed", *PARTS, "head", "total") if k in m or k in b]:
        table.add_row(key, f"{m.get(key, 0.0):.3f}", f"{b.get(key, 0.0):.3f}")
    return table


def summary_line(report: dict) -> str:
    f = report["flops"]
    return (
        f"speedup {report['speedup']:.2f}x (baseline median / merged median); ideal from FLOPs "
        f"{f['ideal_speedup']:.2f}x ({f['merged'] / 1e9:.2f} of {f['baseline'] / 1e9:.2f} GFLOPs); "
        f"{report['speedup_vs_ideal']:.0%} of ideal"
    )
