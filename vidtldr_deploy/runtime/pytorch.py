"""PyTorch runner: the merge-aware model itself on the CPU or a CUDA GPU, eager or torch.compile.

With MergeImpl.CUSTOM, saliency and merge run through the `vidtldr` torch custom ops, whose CUDA
implementations call the streaming CUDA kernels where the kernel library is available
(runtime/torch_cuda_ops.py); on the CPU they run the reference maths. The per-part breakdown times
each block's attention, saliency, merge and MLP with forward hooks in a separate pass.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Sequence

import numpy as np
import torch

from vidtldr_deploy.constants import MergeImpl, MergeMethod
from vidtldr_deploy.runtime.base import Runner, merge_input_name
from vidtldr_deploy.runtime.breakdown import Breakdown, summarise_layers

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class TorchRunner(Runner):
    """`model` with schedule `rs` (all zeros: the unmerged baseline).

    copy=True (profiling) runs a private copy moved to `device` and `precision`, made when the
    runner activates, so two runners of one model (merged and baseline) never share state;
    copy=False (validation) runs the model in place, scheduling it only for the duration of each
    call. `merge_inputs=True` also returns the hidden state entering each merging block
    (runtime/base.py), captured with a forward pre-hook on its MergeStep.
    """

    name = "torch"

    def __init__(
        self,
        model,
        rs: Sequence[int],
        merge_impl: MergeImpl | str = MergeImpl.STANDARD,
        device: str = "cpu",
        precision: str = "fp32",
        compile_model: bool = False,
        copy_model: bool = True,
        merge_inputs: bool = False,
        method: MergeMethod | str | None = None,
    ):
        self.impl = MergeImpl.parse(merge_impl)
        self.method = None if method is None else MergeMethod.parse(method)  # None: the model's
        self.source = model
        self.rs = [int(r) for r in rs]
        self.device = device
        self.dtype = DTYPES[precision]
        self.copied = copy_model
        self.compile_model = compile_model
        self.merge_inputs = merge_inputs
        self.model = None
        side = model.cfg.img_size
        self.output_names = list(model.output_names)
        self.input_shape = (-1, 3, model.frames, side, side)
        self._peak_mib: float | None = None

    def activate(self) -> None:
        if self.impl is MergeImpl.CUSTOM:
            from vidtldr_deploy.runtime import torch_cuda_ops

            torch_cuda_ops.register()
        if self.copied:
            self.model = copy.deepcopy(self.source).to(device=self.device, dtype=self.dtype).eval()
            self.model.set_schedule(self.rs, self.impl, self.method)
        else:
            self.model = self.source
        self.fn = torch.compile(self.model) if self.compile_model else self.model

    def close(self) -> None:
        self.model = self.fn = None

    def _forward(self, video: torch.Tensor):
        if self.model is None:
            raise self.inactive()
        with torch.inference_mode():
            if self.copied:
                return self.fn(video)
            with self.model.scheduled(self.rs, self.impl, self.method):
                return self.fn(video)

    def stage(self, video: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(video)).to(self.device, self.dtype)

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        if not self.merge_inputs:
            outs = self._forward(self.stage(video))
            return {name: t.float().cpu().numpy() for name, t in zip(self.output_names, outs)}
        captured: list[np.ndarray] = []
        handles = [
            block.merge.register_forward_pre_hook(
                lambda _m, args: captured.append(args[0].float().cpu().numpy())
            )
            for block in self.model.blocks
        ]  # MergeStep runs only in blocks that merge, so the hooks fire in merging-layer order
        try:
            outs = self._forward(self.stage(video))
        finally:
            for handle in handles:
                handle.remove()
        named = {name: t.float().cpu().numpy() for name, t in zip(self.output_names, outs)}
        return named | {merge_input_name(i): x for i, x in enumerate(captured)}

    def timed_step(self, video: np.ndarray):
        staged = self.stage(video)

        def step():
            out = self._forward(staged)
            _sync(self.device)
            return out

        return step

    def before_timed(self) -> None:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def after_timed(self) -> None:
        if self.device == "cuda":
            mib = torch.cuda.max_memory_allocated() / 2**20
            self._peak_mib = mib if self._peak_mib is None else max(self._peak_mib, mib)

    def peak_memory_mb(self) -> float | None:
        return self._peak_mib

    def breakdown(self, video, schedule_rows, iterations, workdir) -> Breakdown:
        if self.model is None:
            raise self.inactive()
        return hooks_breakdown(
            self.model, self.stage(video), schedule_rows, self.device, iterations
        )


def torch_outputs(
    model, rs: Sequence[int], video: np.ndarray, method: MergeMethod | str | None = None
) -> dict[str, np.ndarray]:
    """`model`'s outputs by name under schedule `rs` (reference maths, fp32) merged by `method`
    (None: the model's own), in place: the model's own schedule is the same afterwards."""
    with TorchRunner(model, rs, copy_model=False, method=method) as runner:
        return runner.run(video)


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


def hooks_breakdown(
    model: torch.nn.Module,
    video: torch.Tensor,
    schedule_rows: Sequence[dict],
    device: str,
    iterations: int = 5,
    top_ops: int = 12,
) -> Breakdown:
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
        entry["other"] = max(
            0.0, block - sum(entry[p] for p in ("attention", "saliency", "merge", "mlp"))
        )
        per_layer.append(entry)
    out = summarise_layers(
        per_layer, totals.get("forward", 0.0), totals.get("patch_embed", 0.0), "torch forward hooks"
    )
    out.ops = _torch_top_ops(model, video, device, top_ops)
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
            us = getattr(ev, "self_device_time_total", None) or getattr(
                ev, "self_cuda_time_total", 0
            )
        else:
            us = ev.self_cpu_time_total
        if us > 0:
            rows.append({"name": ev.key, "ms": us / 1e3 / runs, "calls": ev.count // runs})
    rows.sort(key=lambda r: -r["ms"])
    return rows[:top]
