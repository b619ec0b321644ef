"""Reading checkpoints safely, inferring their architecture, and loading them into a MergeViT.

Pickles run code when loaded, so state dicts are read with `weights_only=True`; a full pickled
module is only unpickled when the caller passes `unsafe_load=True` (CLI: `--unsafe-load`).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.files import sha256_file
from vidtldr_deploy.models.registry import Architecture, StateDict, list_architectures
from vidtldr_deploy.models.vit import MergeViT, ViTConfig

_NESTED_KEYS = ("model", "module", "state_dict")
_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Checkpoint:
    path: Path
    state: StateDict
    sha256: str
    hf_config: dict | None = None  # config.json of a Hugging Face save_pretrained directory


def _unwrap(obj, path: Path) -> StateDict:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                return _unwrap(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise VidTLDRError(
        f"{path} holds no state dict (found {type(obj).__name__}): expected a dict of tensors, "
        f"or one under 'model', 'module' or 'state_dict'"
    )


def _torch_load(path: Path, unsafe_load: bool) -> StateDict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except pickle.UnpicklingError as err:
        if unsafe_load:
            raise VidTLDRError(f"{path} is corrupt or not a PyTorch checkpoint: {err}") from err
        raise VidTLDRError(
            f"{path} is not a plain state dict: it contains pickled objects, and unpickling runs "
            f"code. Save it with torch.save(model.state_dict(), ...), or pass --unsafe-load if you "
            f"trust the file ({str(err).splitlines()[0]})"
        ) from err
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise VidTLDRError(f"{path} is corrupt or not a PyTorch checkpoint: {err}") from err
    return _unwrap(obj, path)


def _safetensors_load(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise VidTLDRError(f"{path} is corrupt or not a safetensors file: {err}") from err


def read_checkpoint(path: str | Path, unsafe_load: bool = False) -> Checkpoint:
    """A `.pt/.pth/.bin` state dict, a `.safetensors` file, or a Hugging Face model directory."""
    path = Path(path)
    if not path.exists():
        raise VidTLDRError(f"checkpoint {path} does not exist")
    if path.is_dir():
        config_file = path / "config.json"
        weights = next((path / w for w in _HF_WEIGHTS if (path / w).exists()), None)
        if not config_file.exists() or weights is None:
            raise VidTLDRError(
                f"{path} is a directory but not a Hugging Face save_pretrained folder: expected "
                f"config.json and one of {', '.join(_HF_WEIGHTS)}"
            )
        try:
            hf_config = json.loads(config_file.read_text())
        except json.JSONDecodeError as err:
            raise VidTLDRError(f"{config_file} is not valid JSON: {err}") from err
        ckpt = read_checkpoint(weights, unsafe_load)
        ckpt.hf_config = hf_config
        return ckpt
    if path.suffix == ".safetensors":
        state = _safetensors_load(path)
    else:
        state = _torch_load(path, unsafe_load)
    return Checkpoint(path=path, state=state, sha256=sha256_file(path))


def _first_mismatch(
    expected: dict[str, tuple[int, ...]], state: StateDict
) -> tuple[list[str], list[str], tuple[str, tuple, tuple] | None]:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatch = next(
        (
            (k, expected[k], tuple(state[k].shape))
            for k in expected
            if k in state and tuple(state[k].shape) != expected[k]
        ),
        None,
    )
    return missing, unexpected, mismatch


def _fits(arch: Architecture, ckpt: Checkpoint) -> ViTConfig | None:
    converted, _ = arch.convert(ckpt.state)
    if not converted:
        return None
    cfg = arch.adapt(arch.config, converted, ckpt.hf_config)
    missing, unexpected, mismatch = _first_mismatch(arch.expected_shapes(cfg), converted)
    return cfg if not (missing or unexpected or mismatch) else None


_GEOMETRY = ("img_size", "patch_size", "tubelet", "embed_dim", "depth", "heads", "mlp_ratio")


def _registered_size(arch: Architecture, cfg: ViTConfig) -> bool:
    return all(getattr(cfg, f) == getattr(arch.config, f) for f in _GEOMETRY)


def infer_architecture(ckpt: Checkpoint) -> Architecture:
    """The one registered architecture whose keys and shapes the checkpoint fits exactly.

    Families whose config comes with the checkpoint (Hugging Face) fit under every name of the
    family; the name whose registered size the checkpoint has wins.
    """
    fitting = [(arch, cfg) for arch in list_architectures() if (cfg := _fits(arch, ckpt))]
    matches = [arch for arch, cfg in fitting if _registered_size(arch, cfg)] or [
        arch for arch, _ in fitting
    ]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(a.name for a in list_architectures())
    if not matches:
        raise VidTLDRError(
            f"{ckpt.path} matches no known architecture by its keys and shapes; pass --arch "
            f"(one of {names}) to see which keys differ"
        )
    raise VidTLDRError(
        f"{ckpt.path} fits several architectures ({', '.join(a.name for a in matches)}): "
        f"pass --arch to choose"
    )


def _summary(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}{f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''}"


@dataclass
class LoadReport:
    arch: str
    inferred: bool
    loaded: int
    ignored: list[str]

    def describe(self) -> str:
        how = "inferred from the checkpoint" if self.inferred else "as requested"
        text = f"architecture {self.arch} ({how}); {self.loaded} tensors loaded"
        if self.ignored:
            text += f"; {len(self.ignored)} keys of other parts ignored ({_summary(self.ignored, 3)})"
        return text


def load_model(
    ckpt: Checkpoint,
    arch: Architecture,
    frames: int | None = None,
    ckpt_frames: int | None = None,
    inferred: bool = False,
) -> tuple[MergeViT, LoadReport]:
    """Build `arch` and load the checkpoint into it, refusing anything that does not fit."""
    converted, ignored = arch.convert(ckpt.state)
    cfg = arch.adapt(arch.config, converted, ckpt.hf_config)
    missing, unexpected, mismatch = _first_mismatch(arch.expected_shapes(cfg), converted)
    if missing or unexpected or mismatch:
        lines = [f"{ckpt.path} does not fit architecture {arch.name}:"]
        if mismatch:
            key, want, got = mismatch
            lines.append(f"  first mismatching key {key}: expected shape {want}, checkpoint has {got}")
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_summary(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_summary(unexpected)}")
        try:
            other = infer_architecture(ckpt)
            lines.append(f"  the checkpoint fits --arch {other.name}")
        except VidTLDRError:
            lines.append("  check --arch and that this is the right checkpoint")
        raise VidTLDRError("\n".join(lines))
    # A Hugging Face config records the frame count the checkpoint was trained with.
    frames = frames or (ckpt.hf_config or {}).get("num_frames")
    model = arch.build(frames, ckpt_frames, cfg)
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    model.eval()
    return model, LoadReport(arch.name, inferred, len(converted), ignored)
