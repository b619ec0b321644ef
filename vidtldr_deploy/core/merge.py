"""Saliency-weighted bipartite merge with token mass (docs/design.md, "merge(x, size, s, r)").

The scatter-add into destinations is a one-hot matrix product rather than scatter_reduce: it is
exact in fp32 for a 0/1 matrix, and the same code then exports to plain ONNX ops that every runtime
computes correctly (docs/design.md, "ONNX contract").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def resolve_r(r: float, n: int, protected: int = 0) -> int:
    """Token count to merge from a schedule entry: r >= 1 is a count, 0 < r < 1 a fraction of n.

    Clamped to [0, (n - protected) // 2]; `protected` is 1 for a class token, which is never a source.
    """
    if r < 0:
        raise ValueError(f"r must be >= 0, got {r}")
    count = int(n * r) if 0 < r < 1 else int(r)
    return max(0, min(count, (n - protected) // 2))


@dataclass(frozen=True)
class MergePlan:
    """Which a-tokens (even positions) are kept, which are merged, and into which b-token."""

    unmerged: torch.Tensor  # (B, Na - r) a-indices kept, ascending
    sources: torch.Tensor  # (B, r) a-indices merged, best match first
    destinations: torch.Tensor  # (B, r) b-index each source merges into


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| over the last dim in fp32; a zero row stays zero (cosine similarity 0, never NaN)."""
    x = x.float()
    norm = x.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, x / torch.where(norm > 0, norm, torch.ones_like(norm)), x)


def plan_merge(x: torch.Tensor, r: int, class_token: bool = False) -> MergePlan:
    """Bipartite soft matching on x (B, N, C): sources are the r a-tokens with the best match.

    Ties are broken by position (first argmax, stable descending sort), which ONNX TopK and the CUDA
    kernel reproduce, so every implementation picks the same tokens.
    """
    limit = (x.shape[1] - int(class_token)) // 2
    if not 0 <= r <= limit:
        # The static output shape is N - r, so an out-of-range r must not be clamped silently here.
        raise ValueError(f"r={r} is outside [0, {limit}] for {x.shape[1]} tokens: use resolve_r")
    m = unit_rows(x)
    a, b = m[:, ::2], m[:, 1::2]
    sim = (a @ b.transpose(-1, -2) + 1) / 2
    if class_token:
        # The class token sits at a-index 0; -inf keeps it out of the sources (ToMe's rule).
        guard = torch.zeros_like(sim[:, :, :1])
        guard[:, 0] = float("-inf")
        sim = sim + guard
    best, best_idx = sim.max(dim=-1)
    if torch.compiler.is_exporting():
        # ONNX has no stable sort op, but TopK puts the lower index first among equal values,
        # which is exactly the stable descending order.
        order = torch.topk(best, best.shape[-1], dim=-1).indices
    else:
        order = torch.argsort(best, dim=-1, descending=True, stable=True)
    sources = order[:, :r]
    unmerged = torch.sort(order[:, r:], dim=-1).values
    # A positive axis: GatherElements(axis=-1) trips onnx's reference runtime.
    destinations = best_idx.gather(1, sources)
    return MergePlan(unmerged=unmerged, sources=sources, destinations=destinations)


def _take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather rows of t (B, M, C) at idx (B, K) -> (B, K, C)."""
    return t.gather(1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def bipartite_merge(
    x: torch.Tensor,
    size: torch.Tensor | None,
    score: torch.Tensor,
    r: int,
    class_token: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge r tokens of x (B, N, C) with mass size (B, N) and foreground score (B, N).

    Returns x' (B, N - r, C) in x's dtype and size' (B, N - r) in fp32, ordered
    [kept a-tokens in original order, all b-tokens in original order]. A destination becomes the
    mass-weighted mean of itself and its sources, each source's mass scaled by its score, so a
    background source (score 0) is dropped. All arithmetic is fp32.
    """
    if r == 0:
        return x, torch.ones_like(x[..., 0], dtype=torch.float32) if size is None else size.float()
    return _apply_plan(x, size, score, plan_merge(x.float(), r, class_token))


def _apply_plan(
    x: torch.Tensor, size: torch.Tensor | None, score: torch.Tensor, plan: MergePlan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the sources of `plan` into their destinations, weighted by mass times score."""
    out_dtype = x.dtype
    x = x.float()
    size = torch.ones_like(x[..., 0]) if size is None else size.float()
    xa, xb = x[:, ::2], x[:, 1::2]
    size_a, size_b = size[:, ::2], size[:, 1::2]
    weight = score.float()[:, ::2].gather(1, plan.sources) * size_a.gather(1, plan.sources)
    # one_hot[b, j, i] = 1 where source i merges into destination j
    slots = torch.arange(xb.shape[1], device=x.device)
    one_hot = (plan.destinations.unsqueeze(1) == slots.view(1, -1, 1)).to(x.dtype)
    new_size_b = size_b + (one_hot @ weight.unsqueeze(-1)).squeeze(-1)
    pulled = one_hot @ (_take_rows(xa, plan.sources) * weight.unsqueeze(-1))
    new_xb = (xb * size_b.unsqueeze(-1) + pulled) / new_size_b.unsqueeze(-1)
    x_out = torch.cat([_take_rows(xa, plan.unmerged), new_xb], dim=1)
    size_out = torch.cat([size_a.gather(1, plan.unmerged), new_size_b], dim=1)
    return x_out.to(out_dtype), size_out


def random_merge(
    x: torch.Tensor, size: torch.Tensor | None, r: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ablation baseline: r random a-tokens merged by size into random b-tokens, in the layout
    bipartite_merge returns. It keeps the token counts of a schedule and nothing of its matching."""
    b, n = x.shape[:2]
    limit = n // 2
    if not 0 <= r <= limit:
        raise ValueError(f"r={r} is outside [0, {limit}] for {n} tokens: use resolve_r")
    order = torch.stack([torch.randperm(limit, generator=generator) for _ in range(b)])
    sources = order[:, :r].to(x.device)
    unmerged = torch.sort(order[:, r:], dim=-1).values.to(x.device)
    destinations = torch.randint(0, n - limit, (b, r), generator=generator).to(x.device)
    plan = MergePlan(unmerged=unmerged, sources=sources, destinations=destinations)
    ones = torch.ones(b, n, device=x.device)
    return _apply_plan(x, size, ones, plan)
