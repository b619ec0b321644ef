"""Shared helpers of the benchmark scripts (not a library module: run the scripts from a checkout)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import torch  # noqa: E402

from vidtldr_deploy.core.schedule import MergeSchedule, unmerged_schedule  # noqa: E402
from vidtldr_deploy.models.registry import get_architecture  # noqa: E402
from vidtldr_deploy.models.source import LoadedModel  # noqa: E402


def cuda_missing(script: str) -> bool:
    """True (after saying why on stderr) when no CUDA device is visible: GPU benchmarks then
    measure nothing and exit 2 rather than report CPU numbers as GPU ones."""
    if torch.cuda.is_available():
        return False
    print(
        f"{script} needs a CUDA GPU and a CUDA build of PyTorch; this is torch {torch.__version__} "
        "with no CUDA device visible. Nothing was measured.",
        file=sys.stderr,
    )
    return True


def random_model(arch: str, frames: int, seed: int = 0) -> LoadedModel:
    """`arch` with seeded random weights: latency does not depend on the weights' values, but the
    merge's choices do, so the seed is recorded."""
    torch.manual_seed(seed)
    spec = get_architecture(arch)
    model = spec.build(frames=frames).eval()
    label = f"random:{arch}:seed{seed}"
    return LoadedModel(
        model,
        spec.name,
        model.frames,
        label,
        "",
        f"{arch} with seeded random weights (seed {seed})",
    )


def machine() -> str:
    text = f"{platform.machine()} {platform.processor() or ''}".strip()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                text = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return f"{text}; {torch.get_num_threads()} torch threads; torch {torch.__version__}"


def write_json(path: str | Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote {path}")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def strip_samples(report: dict) -> dict:
    """A profile report without the raw samples (kept short in benchmark JSON)."""
    out = dict(report)
    for key in ("merged", "baseline"):
        if key in out:
            out[key] = {k: v for k, v in out[key].items() if k != "samples_ms"}
    return out


def add_umt_b_args(ap: argparse.ArgumentParser, iterations: int, warmup: int, clips: int) -> None:
    """The options of the benchmarks that quantize UMT-B with random weights (bench_int8,
    bench_openvino): its size and schedule, the 12-frame msrvtt case, the tiny smoke case, timing,
    and the seeded calibration and evaluation clips."""
    ap.add_argument("--arch", default="umt-b16")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--schedule", default="300,100")
    ap.add_argument("--msrvtt", action="store_true", help="12 frames, schedule preset msrvtt")
    ap.add_argument("--smoke", action="store_true", help="umt-tiny, one iteration, one clip (CI)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=iterations)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--merge-impl", default="plugin", choices=["plugin", "onnx"])
    ap.add_argument("--calibration-clips", type=int, default=clips)
    ap.add_argument("--eval-clips", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)


@dataclass
class BenchModel:
    """What those benchmarks measure on: the model, its merged and unmerged schedules, and
    calibration and evaluation clips (distinct seeded draws) at batch 1."""

    loaded: LoadedModel
    merged: MergeSchedule
    baseline: MergeSchedule
    calib: list
    evals: list


def umt_b_setup(args: argparse.Namespace) -> BenchModel:
    """`args` (add_umt_b_args) resolved: --msrvtt, then --smoke (which wins), then the model."""
    from vidtldr_deploy.validate.inputs import make_inputs

    if args.msrvtt:
        args.frames, args.schedule = 12, "msrvtt"
    if args.smoke:
        args.arch, args.schedule, args.iterations, args.warmup = "umt-tiny", "0.25x2", 1, 0
        args.calibration_clips = args.eval_clips = 1
    loaded = random_model(args.arch, args.frames, args.seed)
    model = loaded.model
    side = model.cfg.img_size
    shape = (1, 3, args.frames, side, side)
    return BenchModel(
        loaded,
        loaded.schedule(args.schedule),
        unmerged_schedule(model.cfg.depth, model.num_tokens),
        make_inputs(shape, seed=args.seed + 1000, count=args.calibration_clips),
        make_inputs(shape, seed=args.seed + 2000, count=args.eval_clips),
    )
