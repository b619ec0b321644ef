"""FLOPs of every published vid-TLDR preset, merged against unmerged (analytic, fvcore conventions).

    python benchmarks/flops_table.py [--arch umt-b16 umt-l16] [--frames 12] [--batch 1]
                                     [--json out.json]

Prints a Markdown table (baseline GFLOPs, merged GFLOPs, merged / baseline, ideal speedup, tokens
after the last merge) and then the same rows as JSON. No model is built: the counts come from
`vidtldr_deploy.core.flops`, which counts what fvcore counts on the published model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from vidtldr_deploy.core.flops import count_flops, token_count
from vidtldr_deploy.models.presets import PRESETS, schedule_for
from vidtldr_deploy.models.registry import get_architecture


def rows(archs: list[str], frames: int, batch: int) -> list[dict]:
    out = []
    for name in archs:
        arch = get_architecture(name)
        cfg = arch.config
        n = token_count(cfg, frames)
        for preset, rs in PRESETS.get(name, {}).items():
            schedule = schedule_for(preset, name, cfg.depth, n)
            report = count_flops(cfg, frames, schedule, batch)
            out.append(
                {
                    "arch": name,
                    "preset": preset,
                    "schedule": ",".join(str(r) for r in rs),
                    "frames": frames,
                    "batch": batch,
                    "tokens_in": n,
                    "tokens_out": schedule.tokens_out,
                    "clamped": any(row.clamped for row in schedule.layers),
                    "baseline_gflops": round(report.baseline / 1e9, 3),
                    "merged_gflops": round(report.merged / 1e9, 3),
                    "ratio": round(report.ratio, 4),
                    "speedup": round(report.speedup, 3),
                }
            )
    return out


def markdown(table: list[dict]) -> str:
    head = (
        "| arch | preset | schedule | tokens | baseline GFLOPs | merged GFLOPs | merged/baseline "
        "| ideal speedup |\n|---|---|---|---|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in table:
        clamp = " (clamped)" if r["clamped"] else ""
        lines.append(
            f"| {r['arch']} | {r['preset']} | {r['schedule']} | {r['tokens_in']} -> "
            f"{r['tokens_out']}{clamp} | {r['baseline_gflops']:.1f} | {r['merged_gflops']:.1f} | "
            f"{r['ratio']:.3f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=sorted(PRESETS))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    table = rows(args.arch, args.frames, args.batch)
    print(markdown(table))
    print()
    text = json.dumps(table, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
