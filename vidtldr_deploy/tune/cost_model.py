"""Latency cost model: time of one block as a quadratic in its token count, plus a fixed cost.

Attention is quadratic and everything else linear in the tokens, so t(n) = a + b n + c n^2 fits a
block well from a handful of timed token counts; the timer is any `time_block(n_tokens) -> ms`
callable (PyTorch, or OpenVINO through its PyTorch frontend; an ONNX Runtime or TensorRT timer of a
one-block graph plugs in the same way). A merging block is charged at its input count: the merge itself is not timed separately, and
the MLP savings at n - r roughly offset it, so merging pays from the next layer on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.vit import MergeViT

TimeBlock = Callable[[int], "float | Sequence[float]"]  # ms, or the ms of repeated runs


@dataclass(frozen=True)
class BlockCostModel:
    a: float
    b: float
    c: float
    fixed_ms: float = 0.0  # patch embedding, final norm, pooling, head
    samples: tuple[tuple[int, float], ...] = ()  # (tokens, median ms) the fit came from
    # The widest interquartile range / median of the repeated runs at one token count: how far a
    # prediction can be trusted on this machine (a busy machine or too many threads widen it);
    # quartiles, not the extremes, so one run preempted by another job does not decide it.
    spread: float = 0.0
    threads: int | None = None  # intra-op threads the blocks were timed with (torch or OpenVINO)

    def block_ms(self, n: int) -> float:
        return max(0.0, self.a + self.b * n + self.c * n * n)

    def predict_ms(self, n_tokens: int, rs: Sequence[int]) -> float:
        total, n = self.fixed_ms, n_tokens
        for r in rs:
            total += self.block_ms(n)
            n -= int(r)
        return total

    def to_dict(self) -> dict:
        return asdict(self)


def fit_block_cost(
    time_block: TimeBlock, token_counts: Sequence[int], fixed_ms: float = 0.0
) -> BlockCostModel:
    """Least-squares a + b n + c n^2 through time_block at each token count (3 or more), on the
    median where time_block gives repeated runs (their spread is recorded)."""
    counts = sorted({int(n) for n in token_counts if n > 0})
    if len(counts) < 3:
        raise InputError(f"fitting a quadratic needs 3 or more token counts, got {counts}")
    runs = [np.atleast_1d(np.asarray(time_block(n), dtype=np.float64)) for n in counts]
    ms = [float(np.median(r)) for r in runs]
    spread = max(float(np.subtract(*np.percentile(r, [75, 25])) / m) if m > 0 else 0.0
                 for r, m in zip(runs, ms))  # fmt: skip
    x = np.asarray(counts, dtype=np.float64)
    design = np.stack([np.ones_like(x), x, x * x], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, np.asarray(ms), rcond=None)
    return BlockCostModel(float(a), float(b), float(c), fixed_ms, tuple(zip(counts, ms)), spread)


def default_token_counts(n_tokens: int, points: int = 5) -> list[int]:
    """Evenly spaced counts from n/8 to n: the range a schedule's blocks actually see."""
    return sorted({max(1, round(n_tokens * f)) for f in np.linspace(0.125, 1.0, points)})


def _run_ms(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def torch_block_timer(
    model: MergeViT, batch: int = 1, repeats: int = 3, warmup: int = 1
) -> TimeBlock:
    """time_block for PyTorch on the model's device: the ms of `repeats` runs of block 0 (all
    blocks are alike) without merging, on random tokens (the time does not depend on the values)."""
    block = model.blocks[0]
    param = next(model.parameters())

    def time_block(n: int) -> list[float]:
        x = torch.randn(batch, n, model.cfg.embed_dim, device=param.device, dtype=param.dtype)

        def run() -> None:
            with torch.inference_mode():
                block(x, None, 0, "reference")
            if x.is_cuda:
                torch.cuda.synchronize()

        return _run_ms(run, repeats, warmup)

    return time_block


def torch_fixed_ms(model: MergeViT, batch: int = 1, repeats: int = 3, warmup: int = 1) -> float:
    """Median ms of what every schedule pays once: patch embedding, final norm, pool, head."""
    param = next(model.parameters())
    side = model.cfg.img_size
    video = torch.randn(batch, 3, model.frames, side, side, device=param.device, dtype=param.dtype)

    def run() -> None:
        with torch.inference_mode():
            x = model.patch_embed(video) + model.pos_embed.to(video.dtype)
            pooled = model.pool(model.norm(x), None)
            if model.head is not None:
                model.head(pooled)
        if video.is_cuda:
            torch.cuda.synchronize()

    return float(np.median(_run_ms(run, repeats, warmup)))


def torch_cost_model(
    model: MergeViT, batch: int = 1, repeats: int = 5, threads: int | None = None
) -> BlockCostModel:
    """The PyTorch cost model of `model` on its device at `batch` clips: blocks timed at counts
    from n/8 to n, plus the fixed cost, on `threads` intra-op threads (None: torch's default, as
    `vidtldr profile` does), recorded with the model."""
    from vidtldr_deploy.profile.run import torch_threads

    with torch_threads(threads):
        timer = torch_block_timer(model, batch, repeats)
        fixed = torch_fixed_ms(model, batch, repeats)
        fitted = fit_block_cost(timer, default_token_counts(model.num_tokens), fixed)
        return replace(fitted, threads=torch.get_num_threads())


class _BlockForward(torch.nn.Module):
    """One unmerged block as a module of x alone (what a converter traces)."""

    def __init__(self, block: torch.nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x, None, 0, "reference")
        return out[0] if isinstance(out, tuple) else out


class _FixedForward(torch.nn.Module):
    """What every schedule pays once: patch embedding, final norm, pool, head."""

    def __init__(self, model: MergeViT):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.patch_embed(video) + m.pos_embed.to(video.dtype)
        pooled = m.pool(m.norm(x), None)
        return m.head(pooled) if m.head is not None else pooled


def openvino_cost_model(
    model: MergeViT, device: str | None = "CPU", precision: str = "fp32", batch: int = 1,
    repeats: int = 5, threads: int | None = None,
) -> BlockCostModel:  # fmt: skip
    """The cost model timed in OpenVINO: block 0 and the fixed part converted from PyTorch at each
    token count and compiled for `device` at `precision` (f32 unless asked)."""
    from vidtldr_deploy.runtime.openvino import compile_torch_module

    model = model.cpu().float().eval()
    dim, side = model.cfg.embed_dim, model.cfg.img_size

    def time_block(n: int) -> float:
        x = torch.randn(batch, n, dim)
        with torch.no_grad():
            run = compile_torch_module(
                _BlockForward(model.blocks[0]), (x,), device, precision, threads
            )
        return _run_ms(run, repeats, 1)

    video = torch.randn(batch, 3, model.frames, side, side)
    with torch.no_grad():
        fixed = compile_torch_module(_FixedForward(model), (video,), device, precision, threads)
    fixed_ms = float(np.median(_run_ms(fixed, repeats, 1)))
    fitted = fit_block_cost(time_block, default_token_counts(model.num_tokens), fixed_ms)
    return replace(fitted, threads=fixed.threads)
