"""Refusing requests no machine can run, before any work: the memory a forward pass would need,
estimated from the shapes alone (attention scores dominate: B * H * N^2 floats per layer)."""

from __future__ import annotations

import os

from vidtldr_deploy.errors import InputError

LIMIT_ENV = "VIDTLDR_MEMORY_LIMIT_GIB"
DEFAULT_LIMIT_GIB = 64.0  # the largest single-GPU / host budget we expect; override with the env
FLOAT_BYTES = 4


def memory_limit_bytes() -> float:
    raw = os.environ.get(LIMIT_ENV)
    if not raw:
        return DEFAULT_LIMIT_GIB * 2**30
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{LIMIT_ENV}={raw!r} is not a number of GiB") from None
    if not value > 0:
        raise InputError(f"{LIMIT_ENV}={raw!r} must be a positive number of GiB")
    return value * 2**30


def estimate_bytes(
    batch: int, frames: int, side: int, tokens: int, dim: int, heads: int, mlp_ratio: float
) -> dict[str, int]:
    """Peak bytes of one fp32 forward pass, by part (one layer live at a time)."""
    return {
        "input": batch * 3 * frames * side * side * FLOAT_BYTES,
        # scores and probabilities of one layer, plus the saliency pass's own softmax
        "attention": 3 * batch * heads * tokens * tokens * FLOAT_BYTES,
        "activations": int(batch * tokens * dim * (4 + mlp_ratio)) * FLOAT_BYTES,
    }


def forward_bytes(model, batch: int) -> dict[str, int]:
    """estimate_bytes for a loaded model (a MergeViT) at `batch` clips."""
    cfg = model.cfg
    return estimate_bytes(batch, model.frames, cfg.img_size, model.num_tokens, cfg.embed_dim,
                          cfg.heads, cfg.mlp_ratio)  # fmt: skip


PASS_BYTES = 64 << 20  # what one forward pass over a stream of clips may hold, at most


def clips_per_pass(model, budget: int = PASS_BYTES) -> int:
    """How many clips one forward pass may take for its peak (forward_bytes) to fit `budget`:
    evaluate streams clips in passes of this size and tune runs its blocks in chunks of it, so
    memory does not grow with the number of clips. Over a hundred clips for the demo, one for
    ViT-B at 16 frames (about 0.35 GiB of attention per clip)."""
    return max(1, budget // sum(forward_bytes(model, 1).values()))


def check_memory(model, batch: int, what: str = "this request") -> None:
    """Refuse a (model, batch) whose forward pass needs more than the limit, saying how much."""
    parts = forward_bytes(model, batch)
    total, limit = sum(parts.values()), memory_limit_bytes()
    if total <= limit:
        return
    gib = lambda b: f"{b / 2**30:,.1f} GiB"  # noqa: E731
    detail = ", ".join(f"{k} {gib(v)}" for k, v in parts.items())
    raise InputError(
        f"{what} (batch {batch}, {model.frames} frames = {model.num_tokens} tokens) would need about "
        f"{gib(total)} for one forward pass ({detail}), over the {gib(limit)} limit: lower --frames "
        f"or --batch, or raise {LIMIT_ENV} if this machine has the memory"
    )
