"""VideoMAE (Hugging Face transformers checkpoints, a `save_pretrained` directory, read offline).

ViT with tubelet 2, fixed sin-cos positions, no class token, `layernorm_after` as the pre-MLP
norm, q/v biases (stored as `query.bias`/`value.bias`, or `q_bias`/`v_bias` in checkpoints of
older transformers versions), LayerNorm eps from `layer_norm_eps` (HF default 1e-12).

Heads follow transformers:
- `use_mean_pooling=True` (the default): no norm over the last tokens; a classifier takes the token
  mean through `fc_norm` (a plain `nn.LayerNorm`, eps 1e-5). After merging the mean is weighted by
  token mass (ToMe's MAE rule), so it equals the unmerged mean when nothing is merged.
- `use_mean_pooling=False`: `videomae.layernorm` over the last tokens; a classifier then reads token
  0, which merging does not keep, so such classifiers are refused. Encoders are fine either way.
Encoders (`VideoMAEModel`, or the encoder of `VideoMAEForPreTraining`) output `tokens` (HF's
`last_hidden_state`) and `pooled` (the size-weighted token mean, through `fc_norm` if present).

A checkpoint whose config.json has the sizes of a registered architecture (width, depth, heads, MLP,
patch, tubelet) loads only as that one, so it is inferred unambiguously; any other VideoMAE size
loads under any `videomae-*` name with the sizes of its config.json.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.registry import Architecture, StateDict, register
from vidtldr_deploy.models.vit import ViTConfig

FAMILY = "videomae"
_PREFIX = "videomae."
_ENCODER_ROOTS = ("embeddings.", "encoder.", "layernorm.")
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
_LAYER_KEYS = {
    "attention.attention.query.bias": "attn.q_bias",
    "attention.attention.q_bias": "attn.q_bias",
    "attention.attention.value.bias": "attn.v_bias",
    "attention.attention.v_bias": "attn.v_bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
}
_QKV = ("query", "key", "value")
_OTHER_KEYS = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_HEAD_KEYS = {  # outside the `videomae.` prefix in VideoMAEForVideoClassification
    "fc_norm.weight": "pool_norm.weight",
    "fc_norm.bias": "pool_norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
# VideoMAEConfig defaults: save_pretrained may leave out values equal to them.
_HF_DEFAULTS = {
    "image_size": 224,
    "patch_size": 16,
    "tubelet_size": 2,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qv_bias": True,
    "use_mean_pooling": True,
}
FC_NORM_EPS = 1e-5  # transformers builds fc_norm as nn.LayerNorm(hidden_size), eps not configurable


def convert_videomae(raw: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    """transformers VideoMAE state dicts -> MergeViT keys.

    Accepts VideoMAEForVideoClassification / VideoMAEForPreTraining (`videomae.*` plus `fc_norm.*`,
    `classifier.*`; the pre-training decoder is ignored) and a bare VideoMAEModel (`embeddings.*`,
    `encoder.*`, `layernorm.*`). q, k, v projections are concatenated into `attn.qkv.weight`.
    Unknown tensors inside an encoder layer are kept under their own name, so loading reports them
    instead of silently dropping a part of the network.
    """
    prefixed = any(k.startswith(_PREFIX) for k in raw)
    out: StateDict = {}
    ignored: list[str] = []
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    for original, value in raw.items():
        if original in _HEAD_KEYS:
            out[_HEAD_KEYS[original]] = value
            continue
        if prefixed:
            if not original.startswith(_PREFIX):
                ignored.append(original)
                continue
            key = original.removeprefix(_PREFIX)
        else:
            key = original
            if not key.startswith(_ENCODER_ROOTS):
                ignored.append(original)
                continue
        if key in _OTHER_KEYS:
            out[_OTHER_KEYS[key]] = value
            continue
        match = _LAYER.fullmatch(key)
        if match is None:
            # e.g. a stored copy of the fixed sin-cos table: MergeViT rebuilds it.
            ignored.append(original)
            continue
        i, rest = int(match.group(1)), match.group(2)
        part = rest.removeprefix("attention.attention.").removesuffix(".weight")
        if rest.startswith("attention.attention.") and rest.endswith(".weight") and part in _QKV:
            qkv.setdefault(i, {})[part] = value
        elif rest in _LAYER_KEYS:
            out[f"blocks.{i}.{_LAYER_KEYS[rest]}"] = value
        else:
            out[original] = value  # reported as unexpected by load_model (e.g. a key bias)
    for i, parts in sorted(qkv.items()):
        if len(parts) == 3:
            out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([parts[p] for p in _QKV], dim=0)
        else:  # incomplete: keep what is there under its own names, so loading names the gap
            for p, value in parts.items():
                out[f"blocks.{i}.attn.{p}.weight"] = value
    return out, ignored


def _square(value, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise InputError(
                f"VideoMAE {name} {list(value)} is not square: only square sizes are supported"
            )
        value = value[0]
    return int(value)


def _mlp_ratio(dim: int, hidden: int) -> float:
    """A ratio r with int(dim * r) == hidden, the way MergeViT sizes its MLP."""
    ratio = hidden / dim
    if int(dim * ratio) != hidden:
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def _sizes(cfg: ViTConfig) -> tuple:
    """The fields that make one VideoMAE size: width, depth, heads, MLP, patch, tubelet."""
    return (
        cfg.embed_dim,
        cfg.depth,
        cfg.heads,
        int(cfg.embed_dim * cfg.mlp_ratio),
        cfg.patch_size,
        cfg.tubelet,
    )


def config_from_hf(hf_config: Mapping) -> ViTConfig:
    """A ViTConfig with the sizes and norms of a transformers VideoMAEConfig (config.json)."""
    hf = {**_HF_DEFAULTS, **{k: v for k, v in hf_config.items() if v is not None}}
    if "qkv_bias" in hf_config:  # older transformers spelled it qkv_bias
        hf["qv_bias"] = hf_config["qkv_bias"]
    if hf["hidden_act"] != "gelu":
        raise InputError(
            f"VideoMAE hidden_act {hf['hidden_act']!r} is not supported: MergeViT uses exact GELU "
            f"('gelu')"
        )
    dim, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    if dim % heads:
        raise InputError(f"VideoMAE hidden_size {dim} is not a multiple of {heads} heads")
    if int(hf.get("num_channels", 3)) != 3:
        raise InputError(f"VideoMAE num_channels {hf['num_channels']} is not supported: only 3")
    return ViTConfig(
        img_size=_square(hf["image_size"], "image_size"),
        patch_size=_square(hf["patch_size"], "patch_size"),
        tubelet=int(hf["tubelet_size"]),
        embed_dim=dim,
        depth=int(hf["num_hidden_layers"]),
        heads=heads,
        mlp_ratio=_mlp_ratio(dim, int(hf["intermediate_size"])),
        norm_eps=float(hf["layer_norm_eps"]),
        pool_norm_eps=FC_NORM_EPS,
        qv_bias=bool(hf["qv_bias"]),
        final_norm=not hf["use_mean_pooling"],
        pool_norm=bool(hf["use_mean_pooling"]),
        pool="size_weighted",
    )


def adapt_videomae(cfg: ViTConfig, state: StateDict, hf_config: dict | None) -> ViTConfig:
    """The config of the checkpoint: heads and norms from its tensors, sizes from config.json.

    Without config.json (a bare state dict) the architecture's own sizes and HF's defaults are kept.
    """
    has_head = "head.weight" in state
    has_pool_norm = "pool_norm.weight" in state
    if has_head and not has_pool_norm:
        raise InputError(
            "this VideoMAE classifier was trained with use_mean_pooling=False: it classifies from "
            "token 0 (after videomae.layernorm), and token merging does not keep token 0, so it "
            "cannot be merged. Use a mean-pooling classifier (use_mean_pooling=True, with fc_norm) "
            "or the encoder alone"
        )
    details = dict(
        final_norm="norm.weight" in state,
        pool_norm=has_pool_norm,
        num_classes=int(state["head.weight"].shape[0]) if has_head else 0,
        pool="size_weighted",
    )
    if hf_config is None:
        return cfg.with_(qv_bias="blocks.0.attn.q_bias" in state, **details)
    if hf_config.get("model_type", FAMILY) != FAMILY:
        # Another transformers model with VideoMAE-like key names (e.g. an image ViT): keep our own
        # config, so the shapes and the load report say it does not fit; never raise here, since
        # inference tries every family.
        return cfg.with_(**details)
    own = config_from_hf(hf_config)
    sizes = _sizes(own)
    named = {_sizes(arch.config) for arch in _ARCHS}
    if sizes in named and sizes != _sizes(cfg):
        # A registered size loads only under its own name: keep ours, so the shapes say no.
        return cfg.with_(img_size=own.img_size, **details)
    return own.with_(**details)


_ARCHS: list[Architecture] = []


def _videomae(name: str, cfg: ViTConfig, description: str, tiny: bool = False) -> Architecture:
    arch = register(
        Architecture(
            name=name,
            family=FAMILY,
            config=cfg,
            default_frames=4 if tiny else 16,
            description=description,
            convert=convert_videomae,
            adapt=adapt_videomae,
            tiny=tiny,
        )
    )
    _ARCHS.append(arch)
    return arch


# transformers' VideoMAEConfig defaults: a mean-pooling encoder (no final norm, no fc_norm).
VIDEOMAE = ViTConfig(
    tubelet=2,
    norm_eps=1e-12,
    pool_norm_eps=FC_NORM_EPS,
    qv_bias=True,
    final_norm=False,
    pool_norm=False,
    pool="size_weighted",
)
_videomae(
    "videomae-b",
    VIDEOMAE,
    "VideoMAE ViT-B/16, tubelet 2 (768 wide, 12 layers; 16 frames = 1568 tokens), HF transformers",
)
_videomae(
    "videomae-l",
    VIDEOMAE.with_(embed_dim=1024, depth=24, heads=16),
    "VideoMAE ViT-L/16, tubelet 2 (1024 wide, 24 layers; 16 frames = 1568 tokens), HF transformers",
)
_videomae(
    "videomae-tiny",
    VIDEOMAE.with_(img_size=32, patch_size=8, embed_dim=64, depth=4, heads=4),
    "tiny VideoMAE-shaped model for tests and the demo (32 px, 64 wide, 4 layers, tubelet 2)",
    tiny=True,
)
