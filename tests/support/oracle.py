"""The published vid-TLDR algorithm (mlvlab/vid-TLDR: `get_objective_score`, `merging`,
`merge_wavg`), restated once as the tests' oracle.

`guard_nan` switches between the two behaviours the tests need:
- False: the published code as written. Zero-norm tokens and flat entropy rows give NaN, as they do
  there; tests compare against it only on inputs where it is finite.
- True: the guards this toolkit pins (docs/design.md, "vid-TLDR semantics"): a zero-norm token has
  cosine 0 with everything, a sample whose rows are all equally peaked scores 1 everywhere, p log p
  is 0 at p = 0, so every output is finite.
Ties: first argmax for a token's best partner, stable ranking of the sources.
"""

from __future__ import annotations

import torch


def objective_score(attn: torch.Tensor, guard_nan: bool = True) -> torch.Tensor:
    """Foreground score (B, N) from the size-free attention probabilities (B, H, N, N): head mean,
    row sum of p log p, shift by the minimum, divide by the maximum, background below the mean,
    subtract the mean, divide by the new maximum, zero the background."""
    a = attn.mean(dim=1)
    if not guard_nan:
        ent = (a * a.log()).sum(dim=-1)
        shifted = ent - ent.min(dim=-1, keepdim=True).values
        unit = shifted / shifted.max(dim=-1, keepdim=True).values
        avg = unit.mean(dim=-1, keepdim=True)
        centred = unit - avg
        out = centred / centred.max(dim=-1, keepdim=True).values
        return out.masked_fill(unit < avg, 0.0)
    e = torch.where(a > 0, a * torch.log(a), torch.zeros_like(a)).sum(dim=2)
    e = e - e.amin(dim=1, keepdim=True)
    top = e.amax(dim=1, keepdim=True)
    flat = top <= 0  # every row equally peaked: no background evidence
    e = e / torch.where(flat, torch.ones_like(top), top)
    background = e < e.mean(dim=1, keepdim=True)
    e = e - e.mean(dim=1, keepdim=True)
    top = e.amax(dim=1, keepdim=True)
    e = e / torch.where(top > 0, top, torch.ones_like(top))
    e = torch.where(background, torch.zeros_like(e), e)
    return torch.where(flat, torch.ones_like(e), e)


def merge(
    x: torch.Tensor,
    size: torch.Tensor | None,
    score: torch.Tensor,
    r: int,
    guard_nan: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge r of x's N tokens (B, N, C) by saliency `score` (B, N), with token mass `size` (B, N)
    (None: unit mass). Returns fp32 (x', size') with N - r tokens: the kept even-position tokens
    in order, then every odd-position token with its sources' score-weighted mass added."""
    x = x.float()
    bsz, n, _ = x.shape
    size = torch.ones(bsz, n) if size is None else size.float()
    if r == 0:  # the published vidTLDR returns early: no reordering
        return x, size
    score = score.float()
    length = x.norm(dim=-1, keepdim=True)
    if guard_nan:
        normed = torch.where(length > 0, x / torch.where(length > 0, length, 1.0), 0.0)
    else:
        normed = x / length
    sim = (normed[:, ::2] @ normed[:, 1::2].transpose(1, 2) + 1) / 2
    best, best_b = sim.max(dim=-1)
    ranking = best.argsort(dim=-1, descending=True, stable=True)
    src = ranking[:, :r]
    keep = ranking[:, r:].sort(dim=-1).values
    dst = best_b.gather(1, src)
    src_score = score[:, ::2].gather(1, src).unsqueeze(-1)

    def combine(values):  # (B, N, K) -> (B, N - r, K)
        k = values.shape[-1]
        va, vb = values[:, ::2], values[:, 1::2]
        kept = va.gather(1, keep.unsqueeze(-1).expand(-1, -1, k))
        moved = va.gather(1, src.unsqueeze(-1).expand(-1, -1, k)) * src_score
        vb = vb.scatter_reduce(1, dst.unsqueeze(-1).expand(-1, -1, k), moved, reduce="sum")
        return torch.cat([kept, vb], dim=1)

    size_max = size.amax(dim=-1, keepdim=True).unsqueeze(-1)
    x_new = combine(x * (size.unsqueeze(-1) / size_max))
    size_new = combine(size.unsqueeze(-1))
    return x_new / (size_new / size_max), size_new.squeeze(-1)
