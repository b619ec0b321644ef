"""Saliency of each token from the size-free attention map (docs/design.md, "saliency(P0)").

The official implementation (mlvlab/vid-TLDR `get_objective_score`) takes the head-mean of the
softmax attention, scores each row by its negative entropy, then keeps the foreground: tokens whose
normalised score is below the mean are background (score 0), the rest are sharpened into (0, 1].
The operations below follow that order exactly so results agree to float32 rounding; the guards only
change the cases where the official code produces NaN.
"""

from __future__ import annotations

import torch


def neg_entropy_from_attention(attn: torch.Tensor) -> torch.Tensor:
    """Row-wise negative entropy of the head-mean attention: (B, H, N, N) -> (B, N), fp32.

    0 * log 0 is taken as 0 (the limit), where the official code would produce NaN.
    """
    a = attn.float().mean(dim=1)
    plogp = torch.where(a > 0, a * torch.log(a), torch.zeros_like(a))
    return plogp.sum(dim=-1)


def foreground_score(e: torch.Tensor) -> torch.Tensor:
    """Normalise negative entropies (B, N) into foreground scores in [0, 1], background set to 0.

    Constant e carries no evidence of background, so every token scores 1 (a plain size-weighted
    ToMe merge) instead of the official code's 0/0.
    """
    e = e.float()
    s = e - e.amin(dim=-1, keepdim=True)
    span = s.amax(dim=-1, keepdim=True)
    constant = span <= 0
    s = s / torch.where(constant, torch.ones_like(span), span)
    mean = s.mean(dim=-1, keepdim=True)
    background = s < mean
    s = s - mean
    peak = s.amax(dim=-1, keepdim=True)
    s = s / torch.where(peak > 0, peak, torch.ones_like(peak))
    s = torch.where(background, torch.zeros_like(s), s)
    return torch.where(constant, torch.ones_like(s), s)


def saliency_from_attention(attn: torch.Tensor) -> torch.Tensor:
    """Foreground score (B, N) from a materialised size-free attention map P0 (B, H, N, N)."""
    return foreground_score(neg_entropy_from_attention(attn))


def neg_entropy_from_qk(
    q: torch.Tensor, k: torch.Tensor, scale: float, chunk: int | None = None
) -> torch.Tensor:
    """Negative entropy (B, N) of softmax(scale * q k^T) averaged over heads, from q, k (B, H, N, D).

    `chunk` bounds memory to (B, H, chunk, N) by processing query rows in blocks; None takes all rows
    at once (the form that exports to a compact ONNX graph).
    """
    n = q.shape[-2]
    step = n if chunk is None else max(1, chunk)
    qs = q.float() * scale  # scale q first, as the official code does, for identical rounding
    kt = k.float().transpose(-2, -1)
    parts = [
        neg_entropy_from_attention(torch.softmax(qs[..., i : i + step, :] @ kt, dim=-1))
        for i in range(0, n, step)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def saliency_from_qk(
    q: torch.Tensor, k: torch.Tensor, scale: float, chunk: int | None = None
) -> torch.Tensor:
    """Foreground score (B, N) from q, k (B, H, N, D): the `vidtldr::Saliency` op's semantics."""
    return foreground_score(neg_entropy_from_qk(q, k, scale, chunk))
