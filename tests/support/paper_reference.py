"""An independent implementation of the paper's model: the UMT vision encoder with vid-TLDR.

Written from the paper (Choi et al., CVPR 2024) and docs/design.md, and laid out like the published
code rather than like the toolkit's MergeViT:
- attention is explicit: q is scaled, the logits q k^T are materialised, the size-free softmax of
  them is kept for the saliency, and the layer's own softmax adds log(size) to every key once tokens
  carry mass (proportional attention);
- the saliency is the row-wise negative entropy of that map averaged over heads, rescaled to [0, 1],
  background (below the mean) set to 0 and the foreground sharpened;
- the merge is bipartite soft matching on the normalised hidden state; sources are weighted by their
  score, summed into their destinations with scatter_reduce("sum"), and mass-weighted through
  size / size_max as the published code does;
- a final norm over the tokens, and pool_norm over the unweighted token mean.
It never uses SDPA, so fvcore can count every matmul, and it loads MergeViT's state dict as is.

Degenerate inputs follow docs/design.md (0 log 0 = 0; constant entropy -> score 1; a zero-norm token
has cosine similarity 0) so that outputs stay finite where the published code gives NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from support import oracle


def _sincos(n_position: int, dim: int) -> np.ndarray:
    """(n_position, dim) table: sin on even channels, cos on odd, wavelength 10000^(2(j//2)/dim)."""
    table = np.array(
        [
            [pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)]
            for pos in range(n_position)
        ]
    )
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return table


def position_table(n_tokens: int, dim: int, steps: int, ckpt_steps: int | None) -> torch.Tensor:
    """(1, n_tokens, dim) sin-cos positions; stretched linearly in time from `ckpt_steps`."""
    if ckpt_steps is None or ckpt_steps == steps:
        return torch.tensor(_sincos(n_tokens, dim), dtype=torch.float32).unsqueeze(0)
    per_step = n_tokens // steps
    side = int(math.isqrt(per_step))
    base = torch.tensor(_sincos(per_step * ckpt_steps, dim), dtype=torch.float32)
    # (T, H, W, C) -> (H*W, C, T), interpolate over T, back to (T*H*W, C)
    grid = base.reshape(ckpt_steps, side, side, dim).permute(1, 2, 3, 0)
    grid = grid.reshape(-1, dim, ckpt_steps)
    grid = F.interpolate(grid, size=steps, mode="linear")
    grid = grid.reshape(side, side, dim, steps).permute(3, 0, 1, 2)
    return grid.reshape(1, -1, dim)


def objective_score(attn0: torch.Tensor) -> torch.Tensor:
    """Foreground score (B, N, 1) from the size-free attention probabilities (B, H, N, N)."""
    return oracle.objective_score(attn0, guard_nan=True).unsqueeze(-1)


def merge_count(r: float, n: int) -> int:
    """A schedule entry at n tokens: a count (r >= 1) or a fraction of n (r < 1), at most n // 2."""
    count = int(n * r) if r < 1 else int(r)
    return max(min(count, n // 2), 0)


def vid_tldr(
    x: torch.Tensor, size: torch.Tensor | None, attn0: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Merge r of x's N tokens: x (B, N, C), size (B, N, 1) or None, attn0 (B, H, N, N)."""
    if r <= 0:
        return x, size
    score = oracle.objective_score(attn0, guard_nan=True)
    x_new, size_new = oracle.merge(
        x, None if size is None else size[..., 0], score, r, guard_nan=True
    )
    return x_new.to(x.dtype), size_new.unsqueeze(-1).to(x.dtype)


class PaperAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None):
        b, n, _ = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        logits = q @ k.transpose(-2, -1)
        attn0 = logits.softmax(dim=-1).detach()
        if size is not None:
            logits = logits + size.log()[:, None, None, :, 0]
        attn = logits.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.proj(out), attn0


class PaperMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PaperBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float, r: float):
        super().__init__()
        self.r = r
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = PaperAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = PaperMlp(dim, hidden)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None):
        h, attn0 = self.attn(self.norm1(x), size)
        x = x + h
        x, size = vid_tldr(x, size, attn0, merge_count(self.r, x.shape[1]))
        return x + self.mlp(self.norm2(x)), size


class PaperPatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, tubelet: int):
        super().__init__()
        kernel = (tubelet, patch, patch)
        self.proj = nn.Conv3d(3, dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(video).flatten(2).transpose(1, 2)


class PaperUMT(nn.Module):
    """UMT vision encoder with vid-TLDR. `rs`: the schedule entries per layer as written (counts or
    fractions), resolved at each layer against its own token count. Returns (tokens, pooled)."""

    def __init__(
        self, cfg, frames: int, rs: list[float] | None = None, ckpt_frames: int | None = None
    ):
        super().__init__()
        dim = cfg.embed_dim
        rs = list(rs or [])
        if len(rs) > cfg.depth:
            raise ValueError(f"{len(rs)} schedule entries for {cfg.depth} layers")
        rs += [0] * (cfg.depth - len(rs))
        self.patch_embed = PaperPatchEmbed(dim, cfg.patch_size, cfg.tubelet)
        steps = frames // cfg.tubelet
        n_tokens = steps * (cfg.img_size // cfg.patch_size) ** 2
        ckpt_steps = None if ckpt_frames is None else ckpt_frames // cfg.tubelet
        self.register_buffer(
            "pos_embed", position_table(n_tokens, dim, steps, ckpt_steps), persistent=False
        )
        hidden = int(dim * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(PaperBlock(dim, cfg.heads, hidden, cfg.norm_eps, r) for r in rs)
        self.norm = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.pool_norm = nn.LayerNorm(dim, eps=cfg.norm_eps)

    def forward(self, video: torch.Tensor):
        x = self.patch_embed(video) + self.pos_embed.type_as(video)
        size = None
        for block in self.blocks:
            x, size = block(x, size)
        x = self.norm(x)
        pooled = self.pool_norm(x.mean(dim=1, keepdim=True))
        return x, pooled[:, 0]
