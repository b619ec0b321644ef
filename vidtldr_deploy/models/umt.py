"""UMT vision encoder (OpenGVLab Unmasked Teacher), the backbone vid-TLDR was published on.

ViT with tubelet 1, fixed sin-cos positions (stretched in time when the checkpoint was trained on
another frame count), no class token, LayerNorm eps 1e-6, q/v biases, a final norm, and `pool_norm`
over the unweighted token mean (as the official code does, even after merging).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from vidtldr_deploy.models.registry import Architecture, StateDict, register
from vidtldr_deploy.models.vit import ViTConfig

_WRAPPER = "module."
_TOWER = "vision_encoder."
_ENCODER = "encoder."
_OWN_ROOTS = ("patch_embed.", "blocks.", "norm.", "pool_norm.")


def convert_umt(raw: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    """Official UMT checkpoints -> MergeViT keys.

    Accepts the full multi-modal model (`vision_encoder.encoder.*`, `vision_encoder.pool_norm.*`;
    text/fusion towers and the CLIP distillation decoder are ignored) or a bare vision-encoder state
    dict (`encoder.*` + `pool_norm.*`, or the encoder's own `blocks.*`).
    """
    has_tower = any(k.removeprefix(_WRAPPER).startswith(_TOWER) for k in raw)
    out: StateDict = {}
    ignored: list[str] = []
    for original, value in raw.items():
        key = original.removeprefix(_WRAPPER)
        if has_tower and not key.startswith(_TOWER):
            ignored.append(original)
            continue
        key = key.removeprefix(_TOWER).removeprefix(_ENCODER)
        if key.startswith(_OWN_ROOTS):
            out[key] = value
        else:
            ignored.append(original)
    return out, ignored


def _umt(name: str, cfg: ViTConfig, description: str, tiny: bool = False) -> Architecture:
    return register(
        Architecture(
            name=name,
            family="umt",
            config=cfg,
            default_frames=4 if tiny else 12,
            description=description,
            convert=convert_umt,
            tiny=tiny,
        )
    )


UMT = ViTConfig(tubelet=1, norm_eps=1e-6, qv_bias=True, final_norm=True, pool_norm=True)
_umt("umt-b16", UMT, "UMT ViT-B/16 vision encoder (768 wide, 12 layers)")
_umt(
    "umt-l16",
    UMT.with_(embed_dim=1024, depth=24, heads=16),
    "UMT ViT-L/16 vision encoder (1024 wide, 24 layers)",
)
_umt(
    "umt-tiny",
    UMT.with_(img_size=32, patch_size=8, embed_dim=64, depth=4, heads=4),
    "tiny UMT-shaped encoder for tests and the demo (32 px, 64 wide, 4 layers)",
    tiny=True,
)
