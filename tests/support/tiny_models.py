"""Tiny models whose attention carries signal, and structured synthetic clips.

At the default init a random ViT attends almost uniformly, so vid-TLDR's saliency (negative
attention entropy) is flat and every schedule looks alike. Scaling the q and k rows of qkv by s
scales the attention logits by s^2, which makes attention peaked the way trained models' is.
"""

from __future__ import annotations

import numpy as np
import torch

from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.vit import MergeViT

QK_SCALE = 4.0


def peaked(model: MergeViT, qk_scale: float = QK_SCALE) -> MergeViT:
    """Scale every block's q and k projections in place so attention is far from uniform."""
    dim = model.cfg.embed_dim
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[: 2 * dim] *= qk_scale
    return model


def tiny_model(
    arch: str = "umt-tiny",
    frames: int = 4,
    seed: int = 0,
    num_classes: int = 0,
    qk_scale: float = QK_SCALE,
) -> MergeViT:
    """A tiny architecture (umt-tiny: 64 tokens at 4 frames, 4 blocks) with seeded weights and
    peaked attention; num_classes > 0 adds a classifier head (output `logits`)."""
    spec = get_architecture(arch)
    torch.manual_seed(seed)
    config = spec.config.with_(num_classes=num_classes) if num_classes else None
    return peaked(spec.build(frames=frames, config=config).eval(), qk_scale)


def attention_entropy(model: MergeViT, video: torch.Tensor, layer: int = 0) -> tuple[float, float]:
    """(mean row entropy of the head-mean attention at `layer`, entropy of uniform attention)."""
    with torch.inference_mode():
        x = model.patch_embed(video) + model.pos_embed
        size = None
        for block in model.blocks[:layer]:
            x, size = block(x, size, 0, "reference")
        attn = model.blocks[layer].attn
        b, n, _ = x.shape
        h = model.blocks[layer].norm1(x)
        bias = torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
        qkv = torch.nn.functional.linear(h, attn.qkv.weight, bias).reshape(b, n, 3, attn.heads, -1)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        p = torch.softmax((q * attn.scale) @ k.transpose(-2, -1), dim=-1).mean(dim=1)
        ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1).mean()
    return float(ent), float(np.log(n))


def moving_blocks(
    n_clips: int, frames: int = 4, side: int = 32, block: int = 8, seed: int = 0
) -> np.ndarray:
    """(n, 3, T, side, side) float32 clips: a flat tinted background with two coloured squares that
    move a few pixels per frame, and a little noise, so tokens differ in a structured way."""
    rng = np.random.default_rng(seed)
    clips = np.empty((n_clips, 3, frames, side, side), dtype=np.float32)
    for i in range(n_clips):
        background = rng.uniform(-0.5, 0.5, size=3)
        clips[i] = background[:, None, None, None]
        for _ in range(2):
            colour = rng.uniform(-2.0, 2.0, size=3)
            y, x = rng.integers(0, side - block, size=2)
            dy, dx = rng.integers(-3, 4, size=2)
            for t in range(frames):
                yy = int(np.clip(y + dy * t, 0, side - block))
                xx = int(np.clip(x + dx * t, 0, side - block))
                clips[i, :, t, yy : yy + block, xx : xx + block] = colour[:, None, None]
        clips[i] += rng.normal(0, 0.05, size=clips[i].shape).astype(np.float32)
    return clips
