"""Architectures by name (timm-style): the registry imports no family; each family module registers
its configurations here when it is imported, and models/__init__.py imports the families, so any
import of the registry finds them registered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.vit import MergeViT, ViTConfig

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    name: str
    family: str
    config: ViTConfig
    default_frames: int
    description: str
    # Raw checkpoint tensors -> (tensors under MergeViT's key names, names of ignored keys).
    convert: Callable[[Mapping[str, torch.Tensor]], tuple[StateDict, list[str]]]
    # Adjust the config to what a converted checkpoint carries (e.g. a classifier's class count).
    adapt: Callable[[ViTConfig, StateDict, dict | None], ViTConfig] = field(
        default=lambda cfg, state, hf_config: cfg
    )
    tiny: bool = False

    def build(
        self,
        frames: int | None = None,
        ckpt_frames: int | None = None,
        config: ViTConfig | None = None,
    ) -> MergeViT:
        # `is None`, not `or`: --frames 0 is an error MergeViT reports, never the default.
        frames = self.default_frames if frames is None else frames
        return MergeViT(config or self.config, frames, ckpt_frames)

    def expected_shapes(self, config: ViTConfig | None = None) -> dict[str, tuple[int, ...]]:
        """Parameter shapes of this architecture, computed without allocating weights."""
        with torch.device("meta"):
            model = self.build(config=config)
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    _REGISTRY[arch.name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise InputError(
            f"unknown architecture {name!r}: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def list_architectures() -> list[Architecture]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
