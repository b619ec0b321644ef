"""ONNX Runtime on CPU: UMT-B (random weights), merged against unmerged, interleaved.

    python benchmarks/bench_ort_cpu.py [--frames 4] [--batch 1] [--schedule 300,100]
        [--iterations 20] [--warmup 3] [--merge-impl plugin|onnx] [--seed 0]
        [--json benchmarks/results/ort_cpu.json]

Both graphs are exported with `vidtldr_deploy.export` (static shapes, the same batch), run in one
process on the same seeded clip, alternating merged/unmerged every iteration (ABBA) so that drift
hits both. Prints the latency table and the speedup (baseline median / merged median) against the
ideal from FLOPs, and whether speedup >= 0.7 x ideal (a reading, not a test: timings depend on
the machine).
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import machine, print_table, random_model, strip_samples, write_json

from vidtldr_deploy.profile.run import ProfileInputs, ProfileSettings, run_profile
from vidtldr_deploy.profile.stats import STATS

TARGET_FRACTION = 0.7


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="umt-b16")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--schedule", default="300,100")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--merge-impl", default="plugin", choices=["plugin", "onnx"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-layers", action="store_true", help="skip the ONNX Runtime per-op profile")
    ap.add_argument("--json", default="benchmarks/results/ort_cpu.json")
    ap.add_argument("--smoke", action="store_true", help="umt-tiny, one iteration (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.arch, args.schedule, args.iterations, args.warmup = "umt-tiny", "0.25x2", 1, 0

    t0 = time.perf_counter()
    loaded = random_model(args.arch, args.frames, args.seed)
    schedule = loaded.schedule(args.schedule)
    settings = ProfileSettings(
        runtime="onnxruntime", device="cpu", batch=args.batch, iterations=args.iterations,
        warmup=args.warmup, merge_impl=args.merge_impl, layers=not args.no_layers,
        layer_iterations=2, seed=args.seed,
    )  # fmt: skip

    def progress(description: str, total: int):
        print(f"... {description} ({total} steps)", file=sys.stderr, flush=True)
        return lambda: None

    report = run_profile(
        ProfileInputs(loaded, schedule, f"{args.arch} (random weights)"), settings, progress
    ).to_dict()

    ideal = report["flops"]["ideal_speedup"]
    sp = report["speedup"]
    rows = []
    for key in ("baseline", "merged"):
        r = report[key]
        rows.append([key, *[f"{r['latency_ms'][s]:.1f}" for s in STATS], f"{r['throughput']:.2f}"])
    print(f"\n{args.arch}, {args.frames} frames, batch {args.batch}, schedule {args.schedule!r} "
          f"(tokens {schedule.layers[0].tokens_in} -> {schedule.tokens_out}), ONNX Runtime CPU, "
          f"{args.iterations} interleaved iterations after {args.warmup} warm-up")  # fmt: skip
    print(f"machine: {machine()}\n")
    print_table(["model", *[f"{s} ms" for s in STATS], "clips/s"], rows)
    for key in ("merged",):
        bd = report[key].get("breakdown")
        if bd:
            p = bd["parts"]
            print(f"\nmerged graph, ORT node time per batch: saliency {p['saliency']:.1f} ms, merge "
                  f"{p['merge']:.1f} ms, rest {p['other']:.1f} ms ({bd['merge_share']:.1%} in the merge subgraph)")  # fmt: skip
    ok = sp >= TARGET_FRACTION * ideal
    print(f"\nspeedup {sp:.3f}x; ideal from FLOPs {ideal:.3f}x (merged/baseline FLOPs "
          f"{report['flops']['ratio']:.3f}); {sp / ideal:.0%} of ideal; "
          f">= {TARGET_FRACTION} x ideal: {'yes' if ok else 'no'}")  # fmt: skip
    result = strip_samples(report)
    result["benchmark"] = {
        "name": "bench_ort_cpu",
        "command": " ".join(
            ["python", "benchmarks/bench_ort_cpu.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine(),
        "target_fraction_of_ideal": TARGET_FRACTION,
        "meets_target": ok,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
