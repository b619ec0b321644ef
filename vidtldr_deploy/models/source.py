"""Where a model comes from: a checkpoint on disk, the built-in demo (a tiny VideoMAE classifier
trained on the synthetic marked-square task, models/demo_model.py), or a tiny architecture with
seeded random weights (`demo-random`, `demo:<arch>:seed<N>`), resolved to a loaded MergeViT plus
what reports need to say about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import EnvironmentProblem, InputError
from vidtldr_deploy.models.checkpoint import infer_architecture, load_model, read_checkpoint
from vidtldr_deploy.models.memory import check_memory
from vidtldr_deploy.models.presets import schedule_for
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.vit import MergeViT, check_ckpt_frames

DEMO = "demo"  # the trained demo
DEMO_RANDOM = "demo-random"  # a tiny architecture with seeded random weights
DEMO_ARCH = "umt-tiny"  # demo-random's default architecture
DEMO_PREFIX = "demo:"  # demo:<arch>:seed<N>, how graphs record a demo-random model
TRAINED_DEMO_ARCH = "videomae-tiny"  # the registry entry the trained demo loads under
TRAINED_DEMO_NAME = "videomae-demo"  # what reports call it


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


def is_demo(source: str) -> bool:
    """Any built-in model: the trained demo or a random-weight one."""
    return source in (DEMO, DEMO_RANDOM) or source.startswith(DEMO_PREFIX)


def is_random_demo(source: str) -> bool:
    return source == DEMO_RANDOM or source.startswith(DEMO_PREFIX)


def _trained_demo(arch: str | None, frames: int | None, expected_sha256: str | None) -> LoadedModel:
    from vidtldr_deploy.models.demo_model import DEMO_WEIGHTS, training_record

    if arch not in (None, TRAINED_DEMO_ARCH):
        raise InputError(
            f"the demo is a trained {TRAINED_DEMO_ARCH} model; --arch {arch} with random weights "
            f"is '{DEMO_RANDOM} --arch {arch}'"
        )
    if not (DEMO_WEIGHTS / "model.safetensors").is_file():
        raise EnvironmentProblem(
            f"the demo's weights are missing from {DEMO_WEIGHTS}: reinstall vidtldr-deploy, or "
            f"train them with scripts/train_demo_model.py"
        )
    ckpt = read_checkpoint(DEMO_WEIGHTS, expected_sha256=expected_sha256)
    model, _ = load_model(ckpt, get_architecture(TRAINED_DEMO_ARCH), frames, inferred=False)
    record = training_record()
    c = model.cfg
    text = (
        f"demo: built-in {TRAINED_DEMO_NAME}, a VideoMAE classifier ({c.embed_dim} wide, {c.depth} "
        f"layers, {model.num_tokens} tokens) trained on the synthetic marked-square task "
        f"(held-out accuracy {record.get('held_out_accuracy', 0):.1%})"
    )
    return LoadedModel(
        model, TRAINED_DEMO_ARCH, model.frames, DEMO, ckpt.sha256, text, TRAINED_DEMO_NAME
    )


def load_source(
    checkpoint: str,
    arch: str | None = None,
    frames: int | None = None,
    ckpt_frames: int | None = None,
    unsafe_load: bool = False,
    seed: int = 0,
    expected_sha256: str | None = None,
) -> LoadedModel:
    """Load `checkpoint` ('demo', 'demo-random', 'demo:<arch>:seed<N>', or a path) into its
    architecture.

    `expected_sha256` (a graph's record) is checked before the file is read. A checkpoint's label
    is its absolute path, so a graph's record is found from any folder; the trained demo's is
    'demo', found in the installed package."""
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or frames < 1
    ):
        raise InputError(f"--frames must be a positive number of frames, got {frames!r}")
    check_ckpt_frames(ckpt_frames)
    if checkpoint == DEMO:
        return _trained_demo(arch, frames, expected_sha256)
    if is_random_demo(checkpoint):
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
