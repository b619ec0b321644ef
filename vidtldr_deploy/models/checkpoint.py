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

from vidtldr_deploy.errors import InputError, InputErrors, VidTLDRError, plain_text
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
    raise InputError(
        f"{path} holds no state dict (found {type(obj).__name__}): expected a dict of tensors, "
        f"or one under 'model', 'module' or 'state_dict'"
    )


def _detail(err: BaseException) -> str:
    """What went wrong, one line, without colour codes, never empty. torch's weights-only refusal
    opens with advice to retry with weights_only=False; what failed is the line after
    "WeightsUnpickler error:", and the advice is never repeated (see _holds_pickled_objects)."""
    text = plain_text(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _check_readable(path: Path, what: str = "checkpoint") -> None:
    """Refuse what no loader could read, with the real reason: unreadable is not corrupt."""
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError(
            f"{what} {path} is not readable (permission denied): check its permissions "
            f"(chmod a+r) or run as its owner"
        ) from None
    except OSError as err:
        raise InputError(f"{what} {path} cannot be read: {err.strerror or _detail(err)}") from None
    if size == 0:
        raise InputError(
            f"{what} {path} is empty (0 bytes): the download or copy was cut short; fetch it again"
        )


def _holds_pickled_objects(path: Path, err: BaseException) -> bool:
    """True only for a real torch zip checkpoint that the weights-only unpickler refused because of
    the objects it holds; random bytes are corrupt, and must never be steered to --unsafe-load."""
    with open(path, "rb") as f:
        head = f.read(4)
    text = plain_text(err).lower()
    return head == b"PK\x03\x04" and "global" in text


def _torch_load(path: Path, unsafe_load: bool) -> StateDict:
    _check_readable(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except KeyboardInterrupt:
        raise
    except pickle.UnpicklingError as err:
        if not unsafe_load and _holds_pickled_objects(path, err):
            raise InputError(
                f"{path} is not a plain state dict: it contains pickled objects, and unpickling "
                f"runs code. Save it with torch.save(model.state_dict(), ...), or pass "
                f"--unsafe-load if you trust the file ({_detail(err)})"
            ) from err
        raise InputError(f"{path} is corrupt or not a PyTorch checkpoint ({_detail(err)})") from err
    except Exception as err:  # noqa: BLE001 - torch reports a damaged file as many types
        raise InputError(f"{path} is corrupt or not a PyTorch checkpoint ({_detail(err)})") from err
    return _unwrap(obj, path)


def _safetensors_load(path: Path) -> StateDict:
    from safetensors.torch import load_file

    _check_readable(path)
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError, ValueError, ...
        raise InputError(f"{path} is corrupt or not a safetensors file ({_detail(err)})") from err


# config.json fields MergeViT reads, with the type each must have: a wrong type is refused by name
# here instead of surfacing as a ValueError deep in the model build.
_HF_POSITIVE_INTS = (
    "num_frames", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "tubelet_size", "num_channels",
)  # fmt: skip
_HF_SIZES = ("image_size", "patch_size")  # an int, or [h, w]


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_hf_config(config: object, where: Path) -> dict:
    """A config.json's object, with every field MergeViT reads of the right type and range."""
    if not isinstance(config, dict):
        raise InputError(
            f"{where} holds a JSON {type(config).__name__}, not an object: it is not a Hugging "
            f"Face config.json; save the model again with save_pretrained"
        )
    problems = []
    for key in _HF_POSITIVE_INTS:
        if config.get(key) is not None and not _positive_int(config[key]):
            problems.append(f"{key} must be a positive whole number, got {config[key]!r}")
    for key in _HF_SIZES:
        value = config.get(key)
        values = value if isinstance(value, list) else [value]
        if value is not None and not (values and all(_positive_int(v) for v in values)):
            problems.append(f"{key} must be a positive whole number or [h, w], got {value!r}")
    eps = config.get("layer_norm_eps")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0):
        problems.append(f"layer_norm_eps must be a positive number, got {eps!r}")
    if problems:
        raise InputErrors([f"{where}: {p}; fix config.json" for p in problems])
    return config


def _read_hf_config(config_file: Path) -> dict:
    _check_readable(config_file, "config")
    try:
        text = config_file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{config_file} is not UTF-8 text ({err.reason}): it is not a config.json"
        ) from None
    try:
        return check_hf_config(json.loads(text), config_file)
    except json.JSONDecodeError as err:
        raise InputError(f"{config_file} is not valid JSON: {err}") from err


def read_checkpoint(
    path: str | Path, unsafe_load: bool = False, expected_sha256: str | None = None
) -> Checkpoint:
    """A `.pt/.pth/.bin` state dict, a `.safetensors` file, or a Hugging Face model directory.

    With `expected_sha256` the file is hashed first and refused on a mismatch, so an unexpected
    file is never unpickled (--unsafe-load)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist")
    if path.is_dir():
        config_file = path / "config.json"
        weights = next((path / w for w in _HF_WEIGHTS if (path / w).exists()), None)
        if not config_file.exists() or weights is None:
            raise InputError(
                f"{path} is a directory but not a Hugging Face save_pretrained folder: expected "
                f"config.json and one of {', '.join(_HF_WEIGHTS)}"
            )
        hf_config = _read_hf_config(config_file)
        ckpt = read_checkpoint(weights, unsafe_load, expected_sha256)
        # The folder is the checkpoint: graphs record it, so config.json is found again.
        return Checkpoint(path=path, state=ckpt.state, sha256=ckpt.sha256, hf_config=hf_config)
    _check_readable(path)
    sha256 = sha256_file(path)
    if expected_sha256 and sha256 != expected_sha256:
        raise InputError(
            f"checkpoint {path} (sha256 {sha256[:12]}) is not the one the graph was exported from "
            f"(sha256 {expected_sha256[:12]}); it was not loaded: pass the same checkpoint"
        )
    if path.suffix == ".safetensors":
        state = _safetensors_load(path)
    else:
        state = _torch_load(path, unsafe_load)
    return Checkpoint(path=path, state=state, sha256=sha256)


def check_finite(ckpt: Checkpoint, state: StateDict) -> None:
    """NaN or Inf in a weight poisons every output: name the tensors before any export."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(
            f"{ckpt.path} has NaN or Inf values in {len(bad)} tensor(s): {_summary(bad)}; the "
            f"checkpoint is damaged or was saved from a diverged run"
        )


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
    if ckpt.hf_config is not None and matches and len({a.family for a in matches}) == 1:
        # A size of its own, described by its config.json: every name of the family loads it with
        # those sizes, so take the family's first full-size name (the load report says the sizes).
        return next((a for a in matches if not a.tiny), matches[0])
    names = ", ".join(a.name for a in list_architectures())
    if not matches:
        raise InputError(
            f"{ckpt.path} matches no known architecture by its keys and shapes; pass --arch "
            f"(one of {names}) to see which keys differ"
        )
    raise InputError(
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
            text += (
                f"; {len(self.ignored)} keys of other parts ignored ({_summary(self.ignored, 3)})"
            )
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
            lines.append(
                f"  first mismatching key {key}: expected shape {want}, checkpoint has {got}"
            )
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_summary(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_summary(unexpected)}")
        try:
            other = infer_architecture(ckpt)
            lines.append(f"  the checkpoint fits --arch {other.name}")
        except VidTLDRError:
            lines.append("  check --arch and that this is the right checkpoint")
        raise InputError("\n".join(lines))
    check_finite(ckpt, converted)
    # A Hugging Face config records the frame count the checkpoint was trained with; `is None`, so
    # an explicit --frames 0 is refused rather than replaced.
    if frames is None:
        frames = (ckpt.hf_config or {}).get("num_frames")
    model = arch.build(frames, ckpt_frames, cfg)
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    model.eval()
    return model, LoadReport(arch.name, inferred, len(converted), ignored)
