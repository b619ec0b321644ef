"""Accuracy against FLOPs on the shipped demo model: vid-TLDR, ToMe and random merging.

    python benchmarks/bench_accuracy.py -o bench_accuracy.json --plot accuracy.png   # 256 clips
    python benchmarks/bench_accuracy.py --smoke -o /tmp/smoke.json                   # CI: 16 clips

The demo is a tiny VideoMAE (64 px, 6 layers, 256 tokens) trained on a synthetic task (a white-
bordered square among look-alikes; its colour is the label): these are numbers of a tiny model on a
synthetic task, not the paper's. Clips are fresh held-out ones (set --seed, never trained or
selected on), written as H.264 files and decoded like any user clip. For each schedule (uniform `RxL`
and front-loaded `F x L` forms) and method it reports accuracy, agreement with the unmerged model
and cosine; and where the first merge layer's saliency falls: the share of its most salient tokens
that overlap the marked square, against the square's share of all tokens.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, write_json

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.evaluate import MethodSchedule, evaluate
from vidtldr_deploy.evaluate.saliency_overlap import saliency_overlap, task_clips
from vidtldr_deploy.models.source import load_source

# Uniform (the same r in every layer) from 0.93 to 0.46 of the FLOPs, then front-loaded forms.
SCHEDULES = [
    "8x6",
    "16x6",
    "24x6",
    "32x6",
    "40x6",
    "48x6",
    "0.25x2",
    "0.25x6",
    "0.4x3",
    "0.5x2",
    "0.5x3",
]
SMOKE_SCHEDULES = ["16x6", "0.5x3"]
BENCH_SEED = 5  # a set of clips of its own: the model was trained on set 1, selected on set 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--seed", type=int, default=BENCH_SEED, help="which set of clips")
    ap.add_argument("--schedule", action="append", help="schedules (default: a sweep)")
    ap.add_argument("--top-k", type=int, default=16, help="salient tokens counted")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="16 clips, 2 schedules (CI)")
    ap.add_argument("-o", "--output", default="bench_accuracy.json")
    ap.add_argument("--plot", type=Path, help="PNG: accuracy against FLOPs per method")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    count = 16 if args.smoke else args.clips
    schedules = args.schedule or (SMOKE_SCHEDULES if args.smoke else SCHEDULES)
    loaded = load_source("demo")
    model = loaded.model
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        task = task_clips(tmp, count, args.seed, model)
    clips, names, labels, objects = task.clips, task.names, task.labels, task.object_tokens
    clip_s = time.perf_counter() - start
    targets = [MethodSchedule(s, m) for m in MergeMethod for s in schedules]
    start = time.perf_counter()
    result = evaluate(model, clips, names, targets, arch=loaded.arch, labels=labels).to_dict()
    eval_s = time.perf_counter() - start
    overlap = [
        saliency_overlap(model, clips, objects, layer, args.top_k).to_dict()
        for layer in range(min(3, model.cfg.depth))
    ]
    rows = []
    for row in result["schedules"]:
        m = row["metrics"]
        rows.append({
            "schedule": row["spec"]["spec"], "method": row["method"],
            "flops": row["flops"]["ratio"], "accuracy": m["accuracy"],
            "agreement": m["top1_agreement"], "cosine": m["cosine_mean"],
        })  # fmt: skip
    baseline = result["schedules"][0]["metrics"]["baseline_accuracy"]
    report = {
        "benchmark": "bench_accuracy",
        "model": loaded.description,
        "clips": count,
        "clip_seed": args.seed,
        "unmerged_accuracy": baseline,
        "rows": rows,
        "saliency_overlap": overlap,
        "seconds": {"clips": round(clip_s, 1), "evaluate": round(eval_s, 1)},
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/bench_accuracy.py", *(argv if argv is not None else sys.argv[1:])]),
    }  # fmt: skip
    print(markdown(report))
    write_json(args.output, report)
    if args.plot is not None:
        plot(report, args.plot)
    return 0


def markdown(report: dict) -> str:
    """The table: one row per schedule, accuracy of each method side by side."""
    methods = [m.value for m in MergeMethod]
    by = {(r["schedule"], r["method"]): r for r in report["rows"]}
    schedules = list(dict.fromkeys(r["schedule"] for r in report["rows"]))
    head = (
        "| schedule | FLOPs | "
        + " | ".join(f"acc {m}" for m in methods)
        + " | cos vidtldr | cos tome |"
    )
    lines = [
        f"unmerged accuracy {report['unmerged_accuracy']:.3f} on {report['clips']} held-out clips",
        "",
        head,
        "|" + " --- |" * (len(methods) + 4),
    ]
    for s in schedules:
        cells = [f"{by[(s, m)]['accuracy']:.3f}" for m in methods]
        cos = [f"{by[(s, m)]['cosine']:.5f}" for m in ("vidtldr", "tome")]
        lines.append(
            f"| {s} | {by[(s, methods[0])]['flops']:.3f} | " + " | ".join(cells + cos) + " |"
        )
    lines += [
        "",
        "| saliency layer | top-k | on object | chance | lift |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in report["saliency_overlap"]:
        lines.append(
            f"| {o['layer']} | {o['top_k']} | {o['on_object']:.3f} | {o['chance']:.3f} | {o['lift']:.2f}x |"
        )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in MergeMethod:
        rows = sorted(
            (r for r in report["rows"] if r["method"] == method.value), key=lambda r: r["flops"]
        )
        ax.plot([r["flops"] for r in rows], [r["accuracy"] for r in rows], "o-", label=method.value)
    ax.axhline(report["unmerged_accuracy"], color="grey", ls="--", label="unmerged")
    ax.set_xlabel("FLOPs, share of the unmerged model")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"tiny VideoMAE on the synthetic demo task ({report['clips']} clips)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
