"""PyTorch on the GPU: UMT-B fp16, 12 frames, MSRVTT preset (600,200,100) against unmerged, both
with fused attention (SDPA), batch 1 and 8, eager and torch.compile.

    python benchmarks/bench_torch_gpu.py [--batches 1 8] [--modes eager compile]
        [--merge-impls custom_op] [--iterations 100] [--warmup 20] [--seed 0]
        [--json benchmarks/results/torch_gpu.json]

merge_impl custom_op is the fast path (saliency and merge through the `vidtldr` custom ops, which
call the streaming CUDA kernels when the kernel library is built: `vidtldr build-plugins`); add
`reference` to --merge-impls to see the plain PyTorch maths beside it. Merged and unmerged are timed
interleaved on the same clip; speedup = baseline median / merged median, against the ideal from
FLOPs (1.70x for this preset). docs/design.md quotes 0.41x (batch 1) and 0.60x (batch 8) for a merged
model that materialises attention: this script is how the fast path is measured against that.
Needs CUDA: exits with a message (status 2) without it.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import cuda_missing, machine, print_table, random_model, strip_samples, write_json

from vidtldr_deploy.profile.run import ProfileInputs, ProfileSettings, run_profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="umt-b16")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--schedule", default="msrvtt")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument(
        "--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"]
    )
    ap.add_argument(
        "--merge-impls", nargs="+", default=["custom_op"], choices=["custom_op", "reference"]
    )
    ap.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", action="store_true", help="also the per-layer breakdown (eager)")
    ap.add_argument("--json", default="benchmarks/results/torch_gpu.json")
    args = ap.parse_args(argv)
    if cuda_missing("bench_torch_gpu"):
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True

    from vidtldr_deploy.runtime import torch_cuda_ops

    loaded = random_model(args.arch, args.frames, args.seed)
    schedule = loaded.schedule(args.schedule)
    rows, reports = [], []
    t0 = time.perf_counter()
    for impl in args.merge_impls:
        for batch in args.batches:
            for mode in args.modes:
                settings = ProfileSettings(
                    runtime="torch", device="cuda", batch=batch, iterations=args.iterations,
                    warmup=args.warmup, precision=args.precision, merge_impl=impl,
                    compile=mode == "compile", layers=args.layers, seed=args.seed,
                )  # fmt: skip
                print(f"... {impl} batch {batch} {mode}", file=sys.stderr, flush=True)
                torch._dynamo.reset()
                rep = run_profile(
                    ProfileInputs(loaded, schedule, f"{args.arch} (random weights)"), settings
                ).to_dict()
                reports.append(strip_samples(rep))
                b, m = rep["baseline"], rep["merged"]
                rows.append([
                    impl, str(batch), mode,
                    f"{b['latency_ms']['median']:.3f}", f"{m['latency_ms']['median']:.3f}",
                    f"{b['throughput']:.1f}", f"{m['throughput']:.1f}",
                    f"{rep['speedup']:.2f}x", f"{rep['flops']['ideal_speedup']:.2f}x",
                    f"{rep['speedup_vs_ideal']:.0%}",
                    f"{b['peak_memory_mb']:.0f}/{m['peak_memory_mb']:.0f}",
                ])  # fmt: skip
    print(f"\n{args.arch}, {args.frames} frames, schedule {args.schedule!r} "
          f"({schedule.layers[0].tokens_in} -> {schedule.tokens_out} tokens), {args.precision}, SDPA, "
          f"{args.iterations} interleaved iterations after {args.warmup} warm-up")  # fmt: skip
    print(f"machine: {machine()}")
    print(f"saliency/merge on CUDA: {torch_cuda_ops.status()}\n")
    print_table(
        ["merge", "batch", "mode", "unmerged ms", "merged ms", "unmerged clip/s", "merged clip/s",
         "speedup", "ideal", "of ideal", "peak MiB u/m"],
        rows,
    )  # fmt: skip
    write_json(args.json, {
        "benchmark": "bench_torch_gpu",
        "command": " ".join(["python", "benchmarks/bench_torch_gpu.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "fast_path": torch_cuda_ops.status(),
        "wall_seconds": time.perf_counter() - t0,
        "runs": reports,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
