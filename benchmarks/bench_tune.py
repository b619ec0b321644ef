"""Tune on UMT-B (random weights, attention made peaked), 4 frames, 8 clips, PyTorch CPU.

    python benchmarks/bench_tune.py --target-flops 0.6 --threads 2 -o bench_tune.json
    python benchmarks/bench_tune.py --videos --target-flops 0.6 -o bench_tune.json
With --videos the clips are real video files (moving shapes, encoded with PyAV, 320x240) decoded
and preprocessed by vidtldr_deploy.clips, and the decode time is reported; without it they are
synthetic arrays. Prints the candidates evaluated and the time split (decode, unmerged prefix,
search); writes the JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import machine, random_model, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import torch

from support.tiny_models import moving_blocks, peaked
from vidtldr_deploy.tune import Budget, SearchOptions, TuneProgress, tune


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="umt-b16")
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--target-flops", type=float, default=0.6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--beam-width", type=int, default=3)
    p.add_argument("--clamped-presets", action="store_true", help="try 12-frame presets clamped")
    p.add_argument(
        "--videos", action="store_true", help="decode real video files instead of arrays"
    )
    p.add_argument("-o", "--output", default="bench_tune.json")
    p.add_argument("--smoke", action="store_true", help="umt-tiny, two clips, beam 1 (CI)")
    args = p.parse_args()
    if args.smoke:
        args.arch, args.clips, args.beam_width = "umt-tiny", 2, 1
    torch.set_num_threads(args.threads)
    loaded = random_model(args.arch, args.frames)
    model = peaked(loaded.model)
    side = model.cfg.img_size
    decode_s = 0.0
    if args.videos:
        import tempfile

        from support.videos import write_video
        from vidtldr_deploy.clips import load_clips, recipe_for

        folder = Path(tempfile.mkdtemp(prefix="bench-tune-videos-"))
        for i in range(args.clips):
            write_video(folder / f"clip{i}.mp4", 24 + 4 * i, width=320, height=240)
        t0 = time.perf_counter()
        clip_set = load_clips([folder], recipe_for(args.arch), args.frames, 1)
        decode_s = time.perf_counter() - t0
        clips = np.concatenate([b.video[: b.valid] for b in clip_set.batches])
        print(f"decoded {len(clips)} clips in {decode_s:.1f}s ({clip_set.label})")
    else:
        clips = moving_blocks(args.clips, args.frames, side=side, block=side // 4)
    start = time.perf_counter()

    def progress(event: TuneProgress) -> None:
        c, best = event.candidate, event.best
        print(
            f"[{time.perf_counter() - start:7.1f}s] {event.phase:7s} #{event.evaluated:3d} "
            f"{c.schedule:>24s} flops x{c.flops_ratio:.3f} drift {c.drift:.4g}"
            f"{'  *' if best is c else ''}",
            flush=True,
        )

    result = tune(
        model,
        clips,
        Budget("flops", args.target_flops),
        arch=args.arch,
        options=SearchOptions(beam_width=args.beam_width, clamped_presets=args.clamped_presets),
        progress=progress,
    )
    data = result.to_dict()
    total = time.perf_counter() - start
    print(
        f"schedule {data['schedule']}: flops x{data['flops']['ratio']:.3f}, drift "
        f"{data['drift']:.4g}; {data['candidates_evaluated']} candidates, block calls "
        f"{data['block_calls']['run']} (naive {data['block_calls']['naive']}); "
        f"decode {decode_s:.1f}s, prefix {data['seconds']['prefix']:.1f}s, search {data['seconds']['search']:.1f}s, "
        f"total {total:.1f}s"
    )
    for pr in data["presets"]:
        print(
            f"preset {pr['name']}: {pr['schedule']} flops x{pr['flops_ratio']:.3f} "
            f"drift {pr['drift']:.4g} meets {pr['meets_budget']}"
        )
    write_json(
        args.output,
        {
            "machine": machine(),
            "model": loaded.label,
            "args": vars(args),
            "total_seconds": total,
            "decode_seconds": decode_s,
            "tune": data,
        },
    )


if __name__ == "__main__":
    main()
