"""The demo model: a tiny VideoMAE classifier trained on the marked-square task
(clips/synthetic.py), shipped with the package as a Hugging Face `save_pretrained` folder.

64 px, patch 8, tubelet 2, 8 frames: 256 tokens, 64 wide, 6 layers. The training script is
scripts/train_demo_model.py; `training.json` beside the weights records how it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidtldr_deploy.clips.synthetic import CLASSES
from vidtldr_deploy.models.registry import StateDict
from vidtldr_deploy.models.videomae import _HEAD_KEYS, _LAYER_KEYS, _OTHER_KEYS, _PREFIX, _QKV

DEMO_WEIGHTS = Path(__file__).resolve().parent / "demo_weights"

DEMO_HF_CONFIG = {
    "model_type": "videomae",
    "architectures": ["VideoMAEForVideoClassification"],
    "image_size": 64,
    "patch_size": 8,
    "num_channels": 3,
    "num_frames": 8,
    "tubelet_size": 2,
    "hidden_size": 64,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
    "use_mean_pooling": True,
    "id2label": {str(i): name for i, name in enumerate(CLASSES)},
    "label2id": {name: i for i, name in enumerate(CLASSES)},
}


def to_hf_state(state: StateDict) -> StateDict:
    """MergeViT tensors -> VideoMAEForVideoClassification key names (the inverse of
    convert_videomae, with transformers' current `query.bias`/`value.bias` spelling)."""
    # _LAYER_KEYS maps both spellings of the q/v biases to ours; keep the `.bias` one.
    back = {ours: theirs for theirs, ours in _LAYER_KEYS.items() if not theirs.endswith("_bias")}
    other = {ours: theirs for theirs, ours in _OTHER_KEYS.items()}
    head = {ours: theirs for theirs, ours in _HEAD_KEYS.items()}
    out: StateDict = {}
    for key, value in state.items():
        value = value.detach().contiguous()
        if key in head:
            out[head[key]] = value
        elif key in other:
            out[_PREFIX + other[key]] = value
        elif key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            layer = f"{_PREFIX}encoder.layer.{i}."
            if rest == "attn.qkv.weight":
                for name, part in zip(_QKV, value.chunk(3, dim=0)):
                    out[f"{layer}attention.attention.{name}.weight"] = part.contiguous()
            else:
                out[layer + back[rest]] = value
        else:
            raise KeyError(f"no VideoMAE name for {key}")
    return out


def training_record() -> dict:
    """What scripts/train_demo_model.py recorded (held-out accuracy, time, clips); {} if absent."""
    path = DEMO_WEIGHTS / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}
