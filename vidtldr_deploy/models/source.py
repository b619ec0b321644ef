"""Where a model comes from: a checkpoint on disk, or the built-in demo (a tiny architecture with
seeded random weights), resolved to a loaded MergeViT plus what reports need to say about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.models.checkpoint import infer_architecture, load_model, read_checkpoint
from vidtldr_deploy.models.memory import check_memory
from vidtldr_deploy.models.presets import schedule_for
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.vit import MergeViT, check_ckpt_frames

DEMO = "demo"
DEMO_ARCH = "umt-tiny"
DEMO_PREFIX = "demo:"


@dataclass
class LoadedModel:
    model: MergeViT
    arch: str
    frames: int
    label: str  # the checkpoint path, or demo:<arch>:seed<N>
    sha256: str  # of the checkpoint file; "" for the demo
    description: str  # one line for the user: what was loaded and how
    # What reports and titles call the model. The registry name `arch` is what rebuilds it; a
    # Hugging Face folder of its own size loads under its family's names but is not that model.
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.arch

    def schedule(self, spec: str) -> MergeSchedule:
        """`spec` resolved for this model: its depth, token count and its architecture's presets."""
        return schedule_for(
            spec, self.arch, self.model.cfg.depth, self.model.num_tokens, self.model.frames
        )

    def check_memory(self, batch: int) -> None:
        """Refuse a batch whose forward pass no machine here could hold (models/memory.py)."""
        check_memory(self.model, batch, f"{self.arch} at batch {batch}")


def demo_label(arch: str, seed: int) -> str:
    return f"{DEMO_PREFIX}{arch}:seed{seed}"


def load_source(
    checkpoint: str,
    arch: str | None = None,
    frames: int | None = None,
    ckpt_frames: int | None = None,
    unsafe_load: bool = False,
    seed: int = 0,
    expected_sha256: str | None = None,
) -> LoadedModel:
    """Load `checkpoint` ('demo', 'demo:<arch>:seed<N>', or a path) into its architecture.

    `expected_sha256` (a graph's record) is checked before the file is read. A checkpoint's label
    is its absolute path, so a graph's record is found from any folder."""
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or frames < 1
    ):
        raise InputError(f"--frames must be a positive number of frames, got {frames!r}")
    check_ckpt_frames(ckpt_frames)
    if checkpoint == DEMO or checkpoint.startswith(DEMO_PREFIX):
        if checkpoint.startswith(DEMO_PREFIX):
            parts = checkpoint.split(":")
            try:
                arch, seed = parts[1], int(parts[2].removeprefix("seed"))
            except (IndexError, ValueError) as err:
                raise InputError(f"demo source {checkpoint!r} is not demo:<arch>:seed<N>") from err
        spec = get_architecture(arch or DEMO_ARCH)
        if not spec.tiny:
            raise InputError(
                f"the demo runs tiny architectures only; {spec.name} needs a real checkpoint"
            )
        torch.manual_seed(seed)
        model = spec.build(frames).eval()
        label = demo_label(spec.name, seed)
        text = f"demo: built-in {spec.name} with seeded random weights (seed {seed}), no checkpoint"
        return LoadedModel(model, spec.name, model.frames, label, "", text)
    ckpt = read_checkpoint(checkpoint, unsafe_load=unsafe_load, expected_sha256=expected_sha256)
    spec = get_architecture(arch) if arch else infer_architecture(ckpt)
    model, report = load_model(ckpt, spec, frames, ckpt_frames, inferred=arch is None)
    text = report.describe()
    name = spec.name
    if custom_size(model.cfg, spec.config):
        # A Hugging Face folder of its own size loads under the family's names; say what it is.
        name, c = custom_name(spec.family, model.cfg), model.cfg
        text += (
            f"; sizes from config.json: {c.embed_dim} wide, {c.depth} layers, {c.heads} heads "
            f"(named {name!r} in reports: not the registered {spec.name} size)"
        )
    label = str(ckpt.path.resolve())
    return LoadedModel(model, spec.name, model.frames, label, ckpt.sha256, text, name)


def custom_size(cfg, registered) -> bool:
    fields = ("embed_dim", "depth", "heads", "mlp_ratio", "img_size", "patch_size", "tubelet")
    return any(getattr(cfg, f) != getattr(registered, f) for f in fields)


def custom_name(family: str, cfg) -> str:
    """How a model of a size no architecture registers is named: its family and its sizes."""
    return (
        f"{family} ({cfg.embed_dim} wide, {cfg.depth} layers, {cfg.heads} heads, {cfg.img_size} px)"
    )
