"""Train the demo model: a tiny VideoMAE classifier on the marked-square task (clips/synthetic.py).

    python scripts/train_demo_model.py                      # writes vidtldr_deploy/models/demo_weights
    python scripts/train_demo_model.py --out /tmp/demo --train 2000 --epochs 4   # a quicker try

Training clips go through the real path: rendered, written as H.264 files, decoded and
preprocessed by the toolkit's clip loader, so the model sees what `vidtldr evaluate` feeds it.
Everything is seeded; on one CPU thread count the run is repeatable. The model is saved as a
Hugging Face `save_pretrained` folder (config.json + model.safetensors, VideoMAEForVideoClassification
key names), which the toolkit loads as a VideoMAE of custom size and transformers loads as is.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidtldr_deploy.clips import load_video_clip, recipe_for
from vidtldr_deploy.clips.synthetic import (
    CLASSES,
    TRAIN_SEED,
    VALIDATION_SEED,
    render_clip,
    write_video,
)
from vidtldr_deploy.models.demo_model import DEMO_HF_CONFIG, DEMO_WEIGHTS, to_hf_state
from vidtldr_deploy.models.videomae import config_from_hf
from vidtldr_deploy.models.vit import MergeViT


def load_split(
    seed: int, count: int, frames: int, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` clips of set `seed` through encode -> decode -> preprocess, as float16 and labels."""
    recipe = recipe_for("videomae", image_size=image_size)
    clips = np.empty((count, 3, frames, image_size, image_size), np.float16)
    labels = np.empty(count, np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            clip = render_clip(seed, i)
            path = write_video(clip.frames, Path(tmp) / "clip.mp4")
            clips[i] = load_video_clip(path, recipe, frames)
            labels[i] = clip.label
            if (i + 1) % 500 == 0:
                print(f"  set {seed}: {i + 1}/{count} clips", flush=True)
    return torch.from_numpy(clips), torch.from_numpy(labels)


def augment(video: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips in x, y and time: each keeps the label (the marked square's colour)."""
    for dim in (2, 3, 4):
        flip = torch.rand(video.shape[0], generator=gen) < 0.5
        video = torch.where(flip.view(-1, 1, 1, 1, 1), video.flip(dim), video)
    return video


@torch.no_grad()
def accuracy(model: MergeViT, clips: torch.Tensor, labels: torch.Tensor, batch: int = 128) -> float:
    model.eval()
    hits = 0
    for i in range(0, len(clips), batch):
        (logits,) = model(clips[i : i + batch].float())
        hits += int((logits.argmax(-1) == labels[i : i + batch]).sum())
    return hits / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_WEIGHTS)
    parser.add_argument("--train", type=int, default=3000, help="training clips")
    parser.add_argument("--val", type=int, default=500, help="held-out clips")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="weights and batch order")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    cfg = config_from_hf(DEMO_HF_CONFIG).with_(num_classes=len(CLASSES))
    frames = DEMO_HF_CONFIG["num_frames"]
    start = time.perf_counter()
    train_x, train_y = load_split(TRAIN_SEED, args.train, frames, cfg.img_size)
    val_x, val_y = load_split(VALIDATION_SEED, args.val, frames, cfg.img_size)
    data_s = time.perf_counter() - start
    print(f"clips ready in {data_s:.0f} s", flush=True)

    model = MergeViT(cfg, frames)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters, {model.num_tokens} tokens", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    steps_per_epoch = args.train // args.batch
    total = steps_per_epoch * args.epochs
    warmup = max(1, total // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    train_start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(args.train, generator=gen)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch : (b + 1) * args.batch]
            video = augment(train_x[idx].float(), gen)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            (logits,) = model(video)
            loss = F.cross_entropy(logits, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running += float(loss.detach())
            step += 1
        val = accuracy(model, val_x, val_y)
        elapsed = time.perf_counter() - train_start
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {running / steps_per_epoch:.3f}, "
            f"held-out accuracy {val:.4f}, {elapsed:.0f} s",
            flush=True,
        )
    train_s = time.perf_counter() - train_start
    val = accuracy(model, val_x, val_y)

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    config = {**DEMO_HF_CONFIG}
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(to_hf_state(model.state_dict()), str(args.out / "model.safetensors"))
    record = {
        "held_out_accuracy": round(val, 4),
        "held_out_clips": args.val,
        "train_clips": args.train,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "clip_prep_s": round(data_s, 1),
        "train_s": round(train_s, 1),
        "parameters": params,
        "tokens": model.num_tokens,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
