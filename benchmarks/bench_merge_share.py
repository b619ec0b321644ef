"""The merge step's share of encoder time on the GPU: reference maths against the CUDA path.

    python benchmarks/bench_merge_share.py [--batches 1 8] [--iterations 20] [--precision fp16]
        [--json benchmarks/results/merge_share.json]

UMT-B, 12 frames, MSRVTT preset (600,200,100), eager, SDPA attention. For each batch the merged
model runs with saliency and merge through the `vidtldr` custom ops twice: once forced onto the
reference PyTorch maths (materialises the N x N attention per head for saliency and the
(N/2) x (N/2) similarity for the merge), once on the CUDA kernels (streaming, docs/design.md "Speed").
Each part is timed with CUDA events around the block's attention, saliency, merge and MLP (the
instrumented pass of vidtldr_deploy.profile), and the unmerged model's encoder time is shown
beside them. Needs CUDA (exits with status 2 and a message otherwise); without the kernel library
both rows use the reference maths, and the script says so.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import torch
from _common import cuda_missing, machine, print_table, random_model, write_json

from vidtldr_deploy.runtime.pytorch import TorchRunner, hooks_breakdown


def prepare(model, rs, precision: str):
    """A private copy of `model` on the GPU with schedule `rs` and the vidtldr custom ops."""
    return TorchRunner(model, rs, "custom_op", "cuda", precision).model


def breakdown(model, video, layers, iterations: int) -> dict:
    return hooks_breakdown(model, video, layers, "cuda", iterations).to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="umt-b16")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--schedule", default="msrvtt")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="benchmarks/results/merge_share.json")
    args = ap.parse_args(argv)
    if cuda_missing("bench_merge_share"):
        return 2

    from vidtldr_deploy.runtime import torch_cuda_ops

    loaded = random_model(args.arch, args.frames, args.seed)
    schedule = loaded.schedule(args.schedule)
    layers = schedule.to_dict()["layers"]
    base_layers = [
        {**row, "r": 0, "tokens_in": layers[0]["tokens_in"], "tokens_out": layers[0]["tokens_in"]}
        for row in layers
    ]
    merged = prepare(loaded.model, schedule.rs, args.precision)
    unmerged = prepare(loaded.model, [0] * len(schedule.rs), args.precision)
    status = torch_cuda_ops.status()
    if not status["kernels"]:
        print(
            f"note: {status['reason']}: the 'CUDA kernels' rows use the reference maths too",
            file=sys.stderr,
        )
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[args.precision]
    gen = torch.Generator().manual_seed(args.seed)
    rows, results = [], []
    t0 = time.perf_counter()
    for batch in args.batches:
        side = loaded.model.cfg.img_size
        video = torch.randn((batch, 3, args.frames, side, side), generator=gen).to("cuda", dtype)
        base = breakdown(unmerged, video, base_layers, args.iterations)
        base_total = base["parts"]["total"]
        for label, ctx in (
            ("reference maths", torch_cuda_ops.reference_maths),
            ("CUDA kernels", contextlib.nullcontext),
        ):
            with ctx():
                bd = breakdown(merged, video, layers, args.iterations)
            p = bd["parts"]
            results.append(
                {"batch": batch, "path": label, "merged": bd, "unmerged_total_ms": base_total}
            )
            rows.append([
                str(batch), label, f"{p['saliency']:.3f}", f"{p['merge']:.3f}", f"{p['attention']:.3f}",
                f"{p['total']:.3f}", f"{bd['merge_share']:.1%}", f"{base_total:.3f}",
                f"{base_total / p['total']:.2f}x",
            ])  # fmt: skip
    print(f"\n{args.arch}, {args.frames} frames, schedule {args.schedule!r}, {args.precision}, eager, "
          f"{args.iterations} instrumented iterations (CUDA events; hooks add a little overhead)")  # fmt: skip
    print(f"machine: {machine()}")
    print(f"saliency/merge on CUDA: {status}\n")
    print_table(
        ["batch", "saliency/merge", "saliency ms", "merge ms", "attention ms", "encoder ms",
         "merge share", "unmerged ms", "speedup (instrumented)"],
        rows,
    )  # fmt: skip
    write_json(args.json, {
        "benchmark": "bench_merge_share",
        "command": " ".join(["python", "benchmarks/bench_merge_share.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "fast_path": status,
        "wall_seconds": time.perf_counter() - t0,
        "results": results,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
