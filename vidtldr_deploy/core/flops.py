"""Analytic FLOPs of a merge-aware video ViT, counted as fvcore's FlopCountAnalysis counts them.

Conventions (fvcore 0.1.5 default op handles, `fvcore/nn/jit_handles.py`):
- one fused multiply-add is one FLOP; biases, residual adds, scaling, GELU, softmax, log, mean,
  division, gather/scatter, sort and argmax are not counted (fvcore has no handle for them);
- linear: prod(input shape) * out_features; matmul: prod(left shape) * right's last dim;
- conv: batch * prod(weight shape) * prod(output spatial shape);
- layer_norm with affine weights: 5 * prod(input shape).

What is counted is the model vid-TLDR was published on (the official UMT encoder with vid-TLDR),
block by block with N tokens in and N' = N - r after the merge:
  norm1 (N), qkv (N x C x 3C), q k^T (H x N x D x N), P v (H x N x N x D), proj (N x C x C),
  the merge's similarity a b^T (ceil(N/2) x C x floor(N/2)) when r > 0,
  norm2 (N'), fc1 (N' x C x hidden), fc2 (N' x hidden x C);
plus the patch embedding, the final norm over the last tokens, pool_norm over the pooled vector and
a classifier head when there is one. The saliency reuses the layer's own attention map there, so it
adds no counted FLOPs (its entropy is elementwise). A pure function of the configuration and the
per-layer token table: no torch model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from vidtldr_deploy.core.schedule import MergeSchedule


class ViTGeometry(Protocol):
    """What the counts read of a model configuration (models.vit.ViTConfig has it): core knows
    no model classes."""

    img_size: int
    patch_size: int
    tubelet: int
    embed_dim: int
    depth: int
    heads: int
    mlp_ratio: float
    final_norm: bool
    pool_norm: bool
    num_classes: int


LAYER_NORM = 5  # fvcore: 5 FLOPs per element for an affine norm


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one block (for the whole batch), by part."""

    layer: int
    tokens_in: int
    r: int
    tokens_out: int
    norm1: int
    qkv: int
    attn: int  # q k^T and P v
    proj: int
    merge: int  # similarity of the bipartite matching, 0 when r == 0
    norm2: int
    mlp: int

    @property
    def total(self) -> int:
        return self.norm1 + self.qkv + self.attn + self.proj + self.merge + self.norm2 + self.mlp

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs of one forward pass for one token table."""

    patch_embed: int
    layers: tuple[LayerFlops, ...]
    final_norm: int
    pool_norm: int
    head: int

    @property
    def total(self) -> int:
        return (
            self.patch_embed
            + sum(row.total for row in self.layers)
            + self.final_norm
            + self.pool_norm
            + self.head
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "patch_embed": self.patch_embed,
            "final_norm": self.final_norm,
            "pool_norm": self.pool_norm,
            "head": self.head,
            "layers": [row.to_dict() for row in self.layers],
        }


@dataclass(frozen=True)
class FlopsReport:
    """Merged against unmerged: `ratio` = merged / baseline, `speedup` = baseline / merged."""

    batch: int
    frames: int
    merged_detail: ModelFlops
    baseline_detail: ModelFlops

    @property
    def merged(self) -> int:
        return self.merged_detail.total

    @property
    def baseline(self) -> int:
        return self.baseline_detail.total

    @property
    def ratio(self) -> float:
        return self.merged / self.baseline

    @property
    def speedup(self) -> float:
        return self.baseline / self.merged

    @property
    def layers(self) -> tuple[LayerFlops, ...]:
        return self.merged_detail.layers

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "frames": self.frames,
            "merged": self.merged,
            "baseline": self.baseline,
            "merged_gflops": self.merged / 1e9,
            "baseline_gflops": self.baseline / 1e9,
            "ratio": self.ratio,
            "speedup": self.speedup,
            "merged_detail": self.merged_detail.to_dict(),
            "baseline_detail": self.baseline_detail.to_dict(),
        }


def token_count(cfg: ViTGeometry, frames: int) -> int:
    """Tokens entering the first block: patches per frame x time steps (+1 for a class token)."""
    grid = cfg.img_size // cfg.patch_size
    return (frames // cfg.tubelet) * grid * grid + int(bool(getattr(cfg, "class_token", False)))


def _table(
    cfg: ViTGeometry, frames: int, schedule: MergeSchedule | Sequence[int] | None
) -> list[tuple[int, int]]:
    """(tokens_in, r) per layer from a resolved schedule or a list of resolved counts r."""
    n = token_count(cfg, frames)
    if schedule is None:
        rs: list[int] = [0] * cfg.depth
    elif isinstance(schedule, MergeSchedule):
        rows = schedule.layers
        if len(rows) != cfg.depth:
            raise ValueError(f"schedule has {len(rows)} layers, the model has {cfg.depth}")
        if rows and rows[0].tokens_in != n:
            raise ValueError(
                f"schedule was resolved for {rows[0].tokens_in} tokens, the model has {n} "
                f"at {frames} frames"
            )
        rs = [row.r for row in rows]
    else:
        rs = [int(r) for r in schedule]
        if len(rs) != cfg.depth:
            raise ValueError(f"schedule has {len(rs)} layers, the model has {cfg.depth}")
    out = []
    for i, r in enumerate(rs):
        if r < 0 or r > n // 2:
            raise ValueError(f"layer {i}: r={r} is not a resolved count in [0, {n // 2}]")
        out.append((n, r))
        n -= r
    return out


def block_flops(
    layer: int, n: int, r: int, dim: int, heads: int, hidden: int, batch: int = 1
) -> LayerFlops:
    """One pre-norm block with n tokens in and r merged after the attention residual."""
    head_dim = dim // heads
    n_out = n - r
    na, nb = (n + 1) // 2, n // 2  # even (sources) and odd (destinations) positions
    return LayerFlops(
        layer=layer,
        tokens_in=n,
        r=r,
        tokens_out=n_out,
        norm1=batch * LAYER_NORM * n * dim,
        qkv=batch * n * dim * 3 * dim,
        attn=2 * batch * heads * n * head_dim * n,
        proj=batch * n * dim * dim,
        merge=batch * na * dim * nb if r > 0 else 0,
        norm2=batch * LAYER_NORM * n_out * dim,
        mlp=2 * batch * n_out * dim * hidden,
    )


def model_flops(
    cfg: ViTGeometry,
    frames: int,
    schedule: MergeSchedule | Sequence[int] | None = None,
    batch: int = 1,
) -> ModelFlops:
    """FLOPs of one forward pass of a ViT with `cfg` on `frames` frames under a token table."""
    dim = cfg.embed_dim
    hidden = int(dim * cfg.mlp_ratio)
    table = _table(cfg, frames, schedule)
    layers = tuple(
        block_flops(i, n, r, dim, cfg.heads, hidden, batch) for i, (n, r) in enumerate(table)
    )
    patches = token_count(cfg, frames) - int(bool(getattr(cfg, "class_token", False)))
    kernel = 3 * cfg.tubelet * cfg.patch_size * cfg.patch_size
    n_last = layers[-1].tokens_out if layers else patches
    num_classes = getattr(cfg, "num_classes", 0) or 0
    return ModelFlops(
        patch_embed=batch * patches * dim * kernel,
        layers=layers,
        final_norm=batch * LAYER_NORM * n_last * dim if cfg.final_norm else 0,
        pool_norm=batch * LAYER_NORM * dim if cfg.pool_norm else 0,
        head=batch * dim * num_classes,
    )


def count_flops(
    cfg: ViTGeometry,
    frames: int,
    schedule: MergeSchedule | Sequence[int] | None,
    batch: int = 1,
) -> FlopsReport:
    """Merged (under `schedule`: a resolved MergeSchedule or per-layer counts r) against the same
    model without merging."""
    merged = model_flops(cfg, frames, schedule, batch)
    baseline = model_flops(cfg, frames, None, batch)
    return FlopsReport(batch=batch, frames=frames, merged_detail=merged, baseline_detail=baseline)
