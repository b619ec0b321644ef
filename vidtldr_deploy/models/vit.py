"""A merge-aware video ViT shared by the families: pre-norm blocks that apply vid-TLDR in place.

Block i (docs/design.md): attention (proportional once a merge happened), residual, then if r_i > 0 the
saliency of the size-free attention and a merge of the hidden state, then the MLP. Attention stays
fused (SDPA); proportional attention is an additive log(size) key bias, and saliency is recomputed
from q and k so the layer never hands its probabilities to another consumer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from vidtldr_deploy.constants import MergeImpl, MergeMethod
from vidtldr_deploy.core import ops
from vidtldr_deploy.core.flops import token_count
from vidtldr_deploy.core.merge import bipartite_merge, random_merge
from vidtldr_deploy.core.saliency import saliency_from_qk
from vidtldr_deploy.errors import InputError


@dataclass(frozen=True)
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    tubelet: int = 1
    embed_dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    qv_bias: bool = True
    final_norm: bool = True  # a norm over the tokens after the last block
    pool_norm: bool = True  # a norm over the pooled vector
    pool_norm_eps: float | None = None  # eps of pool_norm; None: norm_eps (HF fc_norm: 1e-5)
    pool: str = "mean"  # "mean": unweighted token mean (UMT); "size_weighted": by token mass (MAE)
    num_classes: int = 0  # > 0: a classifier head, output `logits`

    def with_(self, **changes) -> ViTConfig:
        return replace(self, **changes)


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The fixed sin-cos table of VideoMAE/UMT: (1, n_position, dim), fp32."""
    pos = torch.arange(n_position, dtype=torch.float64).unsqueeze(1)
    exponent = (2 * (torch.arange(dim) // 2)).to(torch.float64) / dim
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponent)
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.to(torch.float32).unsqueeze(0)


def interpolated_sinusoid_table(
    n_position: int, dim: int, ckpt_frames: int, frames: int
) -> torch.Tensor:
    """UMT's table for a checkpoint trained on `ckpt_frames` time steps, stretched linearly in time
    to `frames` (official `get_sinusoid_encoding_table(..., ckpt_num_frame, cur_frame)`)."""
    if ckpt_frames == frames:
        return sinusoid_table(n_position, dim)
    table = sinusoid_table(n_position // frames * ckpt_frames, dim)
    side = int((n_position // frames) ** 0.5)
    table = table.reshape(-1, ckpt_frames, side, side, dim).permute(0, 2, 3, 4, 1)
    table = F.interpolate(table.reshape(-1, dim, ckpt_frames), size=frames, mode="linear")
    table = table.reshape(1, side, side, dim, frames).permute(0, 4, 1, 2, 3)
    return table.flatten(1, 3)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qv_bias: bool):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, size: torch.Tensor | None):
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # Proportional attention: log(size) added to every key's logit once tokens carry mass.
        mask = None if size is None else torch.log(size).to(q.dtype)[:, None, None, :]
        if torch.compiler.is_exporting():
            # Spelled out for export: opset-18 ONNX has no attention op, and the exporter's SDPA
            # decomposition fails on CPU; MatMul-Softmax-MatMul is the pattern TensorRT fuses.
            logits = (q * self.scale) @ k.transpose(-2, -1)
            out = torch.softmax(logits if mask is None else logits + mask, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), q, k


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SaliencyStep(nn.Module):
    """Foreground score (B, N) from the layer's q, k. A module of its own (no parameters) so that
    hooks and profilers see the merge steps by name."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, merge_impl: MergeImpl) -> torch.Tensor:
        if merge_impl is MergeImpl.CUSTOM:
            return ops.saliency(q, k, self.scale)
        return saliency_from_qk(q, k, self.scale)


class MergeStep(nn.Module):
    """Merge r tokens of the hidden state (see SaliencyStep for why this is a module)."""

    def forward(self, x, size, score, r: int, merge_impl: MergeImpl):
        if merge_impl is MergeImpl.CUSTOM:
            mass = torch.ones_like(x[..., 0], dtype=torch.float32) if size is None else size
            return ops.merge(x, mass, score, r)
        return bipartite_merge(x, size, score, r)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = Attention(dim, cfg.heads, cfg.qv_bias)
        self.saliency = SaliencyStep(self.attn.scale)
        self.merge = MergeStep()
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(
        self,
        x,
        size,
        r: int,
        merge_impl: MergeImpl | str = MergeImpl.STANDARD,
        method: MergeMethod = MergeMethod.VIDTLDR,
        generator: torch.Generator | None = None,
    ):
        merge_impl = MergeImpl.parse(merge_impl)
        h, q, k = self.attn(self.norm1(x), size)
        x = x + h
        if r > 0 and method is MergeMethod.RANDOM:
            x, size = random_merge(x, size, r, generator)
        elif r > 0:
            if method is MergeMethod.TOME:
                # ToMe: every source keeps its whole mass; no saliency step at all.
                score = torch.ones_like(x[..., 0], dtype=torch.float32)
            else:
                score = self.saliency(q, k, merge_impl)
            x, size = self.merge(x, size, score, r, merge_impl)
        return x + self.mlp(self.norm2(x)), size


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        kernel = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(video).flatten(2).transpose(1, 2)


class MergeViT(nn.Module):
    """Video ViT on (B, 3, T, H, W) with a static per-layer merge schedule `rs`.

    Outputs (tokens (B, N_last, C), pooled (B, C)) for encoders, (logits (B, K),) for classifiers.
    """

    def __init__(self, cfg: ViTConfig, frames: int, ckpt_frames: int | None = None):
        super().__init__()
        check_input_geometry(cfg, frames)
        check_ckpt_frames(ckpt_frames)
        self.cfg = cfg
        self.frames = frames
        self.patch_embed = PatchEmbed(cfg)
        steps = frames // cfg.tubelet
        self.num_tokens = token_count(cfg, frames)
        table = interpolated_sinusoid_table(
            self.num_tokens, cfg.embed_dim, steps if ckpt_frames is None else ckpt_frames, steps
        )
        self.register_buffer("pos_embed", table, persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        eps = cfg.norm_eps
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=eps) if cfg.final_norm else nn.Identity()
        pool_eps = eps if cfg.pool_norm_eps is None else cfg.pool_norm_eps
        pool_norm = nn.LayerNorm(cfg.embed_dim, eps=pool_eps) if cfg.pool_norm else nn.Identity()
        self.pool_norm = pool_norm
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else None
        self.rs: list[int] = [0] * cfg.depth
        self.merge_impl = MergeImpl.STANDARD
        self.method = MergeMethod.VIDTLDR
        self.random_seed = 0  # MergeMethod.RANDOM draws its pairs from this seed on every call

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("logits",) if self.head is not None else ("tokens", "pooled")

    @property
    def input_shape_hint(self) -> str:
        side = self.cfg.img_size
        return f"(B, 3, {self.frames}, {side}, {side})"

    def set_schedule(
        self,
        rs: Sequence[int],
        merge_impl: MergeImpl | str = MergeImpl.STANDARD,
        method: MergeMethod | str | None = None,
    ) -> MergeViT:
        """Merge rs[i] tokens in block i from now on (MergeImpl or any of its spellings), with
        `method` (vid-TLDR, ToMe, or the random-pairs baseline; None keeps the model's)."""
        if len(rs) != self.cfg.depth:
            raise InputError(f"schedule has {len(rs)} layers, model has {self.cfg.depth}")
        self.merge_impl = MergeImpl.parse(merge_impl)
        if method is not None:
            self.method = MergeMethod.parse(method)
        self.rs = [int(r) for r in rs]
        return self

    @contextlib.contextmanager
    def scheduled(
        self,
        rs: Sequence[int],
        merge_impl: MergeImpl | str = MergeImpl.STANDARD,
        method: MergeMethod | str | None = None,
    ) -> Iterator[MergeViT]:
        """`with model.scheduled(rs): ...` runs the block with schedule `rs` and restores the
        schedule it had afterwards, also when the block fails."""
        saved = (list(self.rs), self.merge_impl, self.method)
        self.set_schedule(rs, merge_impl, method)
        try:
            yield self
        finally:
            self.set_schedule(*saved)

    def pool(self, x: torch.Tensor, size: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.pool == "size_weighted" and size is not None:
            w = size.to(x.dtype).unsqueeze(-1)
            return self.pool_norm((x * w).sum(dim=1) / w.sum(dim=1))
        return self.pool_norm(x.mean(dim=1))

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Tokens entering block 0: patch embedding plus the fixed position table."""
        return self.patch_embed(video) + self.pos_embed.to(video.dtype)

    def finish(self, x: torch.Tensor, size: torch.Tensor | None):
        """The outputs from the last block's tokens: final norm, pooling, head (when present)."""
        x = self.norm(x)
        pooled = self.pool(x, size)
        if self.head is not None:
            return (self.head(pooled),)
        return x, pooled

    def forward(self, video: torch.Tensor):
        x = self.embed(video)
        size = None
        generator = None
        if self.method is MergeMethod.RANDOM:
            generator = torch.Generator().manual_seed(self.random_seed)
        for block, r in zip(self.blocks, self.rs):
            x, size = block(x, size, r, self.merge_impl, self.method, generator)
        return self.finish(x, size)


def check_input_geometry(cfg: ViTConfig, frames: int) -> None:
    """Refuse frame counts and image sizes the architecture cannot take, saying what it can."""
    if not _is_int(frames):
        raise InputError(f"--frames must be a whole number, got {frames!r}")
    if frames < cfg.tubelet or frames % cfg.tubelet:
        raise InputError(
            f"--frames {frames} does not fit tubelet size {cfg.tubelet}: "
            f"use a positive multiple of {cfg.tubelet}"
        )
    if cfg.img_size % cfg.patch_size:
        raise InputError(
            f"image size {cfg.img_size} is not a multiple of patch size {cfg.patch_size}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_ckpt_frames(ckpt_frames) -> None:
    """--ckpt-frames is a count of frames the checkpoint was trained on: a positive whole number."""
    if ckpt_frames is None:
        return
    if not _is_int(ckpt_frames) or ckpt_frames < 1:
        raise InputError(
            f"--ckpt-frames must be a positive number of frames (the checkpoint's training clip "
            f"length, e.g. 8), got {ckpt_frames!r}"
        )
