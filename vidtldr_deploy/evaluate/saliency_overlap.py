"""Does the saliency find the object? For clips with an object mask per frame (the demo's task,
clips/synthetic.py): the share of a merge layer's most salient tokens that overlap the object,
against the share of all tokens that do (what a random pick would get)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidtldr_deploy.clips import load_video_clip, recipe_for, uniform_indices
from vidtldr_deploy.clips.synthetic import FRAMES, write_task
from vidtldr_deploy.models.vit import MergeViT


@dataclass(frozen=True)
class TaskClips:
    """Clips of the demo's task, decoded for a model, with what the measurements need."""

    clips: np.ndarray  # float32 (B, 3, T, S, S), as `vidtldr evaluate` decodes them
    names: list[str]  # file names
    labels: dict[str, int]  # by file name
    object_tokens: np.ndarray  # bool (B, N): tokens holding any pixel of the marked square


def task_clips(folder: str | Path, count: int, seed: int, model: MergeViT) -> TaskClips:
    """Write clips 0..count-1 of set `seed` into `folder` and decode them for `model` (a
    VideoMAE-family model at the task's frame size, such as the demo)."""
    made = write_task(folder, count, seed=seed)
    recipe = recipe_for("videomae", image_size=model.cfg.img_size)
    clips = np.stack([load_video_clip(v, recipe, model.frames) for v in made.videos])
    masks = np.load(made.masks_npz)
    indices = uniform_indices(FRAMES, model.frames)
    objects = np.stack([token_masks(masks[v.stem], indices, model) for v in made.videos])
    names = [v.name for v in made.videos]
    return TaskClips(clips, names, dict(zip(names, made.labels)), objects)


@dataclass(frozen=True)
class SaliencyOverlap:
    layer: int
    top_k: int
    on_object: float  # share of the top-k salient tokens that overlap the object
    chance: float  # share of all tokens that overlap the object
    clips: int

    @property
    def lift(self) -> float:
        return self.on_object / self.chance if self.chance else float("nan")

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "top_k": self.top_k,
            "on_object": self.on_object,
            "chance": self.chance,
            "lift": self.lift,
            "clips": self.clips,
        }


def token_masks(masks: np.ndarray, indices: Sequence[int], model: MergeViT) -> np.ndarray:
    """Pixel masks (F, H, W) of one video and the frame indices the model sampled -> (N,) bool:
    the tokens (tubelet x patch cells, in the model's token order) that hold any object pixel.
    The clip must be at the model's size (no resize or crop between the mask and the tokens)."""
    cfg = model.cfg
    sampled = np.asarray(masks)[list(indices)]
    t, h, w = sampled.shape
    if h != cfg.img_size or w != cfg.img_size:
        raise ValueError(f"masks are {h}x{w}, the model takes {cfg.img_size}x{cfg.img_size}")
    p, k = cfg.patch_size, cfg.tubelet
    cells = sampled.reshape(t // k, k, h // p, p, w // p, p)
    return cells.any(axis=(1, 3, 5)).reshape(-1)


def first_layer_saliency(model: MergeViT, video: torch.Tensor, layer: int) -> np.ndarray:
    """The vid-TLDR saliency (B, N) that block `layer` computes on the unmerged tokens (no block
    before it merges), read from its saliency step."""
    rs = [0] * model.cfg.depth
    rs[layer] = 1
    seen: list[torch.Tensor] = []
    hook = model.blocks[layer].saliency.register_forward_hook(
        lambda module, args, out: seen.append(out.detach())
    )
    try:
        with torch.inference_mode(), model.scheduled(rs):
            model(video)
    finally:
        hook.remove()
    return seen[0].float().numpy()


def saliency_overlap(
    model: MergeViT, clips: np.ndarray, object_tokens: np.ndarray, layer: int = 0, top_k: int = 16
) -> SaliencyOverlap:
    """The share of the `top_k` most salient tokens of block `layer` that overlap the object
    (object_tokens (B, N) bool), pooled over the clips, against the object's share of tokens."""
    score = first_layer_saliency(model, torch.from_numpy(np.ascontiguousarray(clips)), layer)
    # Stable order: equal scores (all background tokens score 0) are taken by position.
    top = np.argsort(-score, axis=1, kind="stable")[:, :top_k]
    hits = np.take_along_axis(object_tokens, top, axis=1)
    return SaliencyOverlap(
        layer=layer,
        top_k=top_k,
        on_object=float(hits.mean()),
        chance=float(object_tokens.mean()),
        clips=len(clips),
    )
