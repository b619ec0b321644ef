"""Time the vid-TLDR CUDA kernels at the first merge layer of UMT-B (MSRVTT preset).

Saliency (fp16 q, k) is timed against one fused attention over the same q, k, v
(torch.nn.functional.scaled_dot_product_attention): docs/design.md asks for at most ~1.5x, since the
saliency pass replaces a materialised attention map. Merge is timed against the eager PyTorch
reference `bipartite_merge`. CUDA events, warm-up, median over many iterations.

    python benchmarks/bench_kernels.py [--batch 1 8] [--iters 100] [--json bench_kernels.json] [--library DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

# UMT-B, 12 frames of 224x224 with 16x16 patches and tubelet 1: N = 12 * 196 = 2352.
N, C, H, D, R = 2352, 768, 12, 64, 600


def time_ms(fn, iters: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "mean_ms": statistics.fmean(times),
    }


def bench_batch(batch: int, iters: int, warmup: int, library: str | None) -> list[dict]:
    from vidtldr_deploy.core.merge import bipartite_merge
    from vidtldr_deploy.runtime import kernels

    g = torch.Generator(device="cuda").manual_seed(batch)
    q, k, v = (
        torch.randn(batch, H, N, D, device="cuda", generator=g, dtype=torch.float16)
        for _ in range(3)
    )
    scale = D**-0.5
    rows = []

    sdpa = time_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), iters, warmup)
    sal = time_ms(lambda: kernels.saliency(q, k, scale, library=library), iters, warmup)
    rows.append(
        {
            "op": "saliency fp16",
            "batch": batch,
            "baseline": "sdpa (fused attention)",
            "kernel": sal,
            "reference": sdpa,
            "ratio_vs_reference": sal["median_ms"] / sdpa["median_ms"],
        }
    )

    for dtype in (torch.float16, torch.float32):
        x = torch.randn(batch, N, C, device="cuda", generator=g, dtype=dtype)
        size = 1 + torch.rand(batch, N, device="cuda", generator=g)
        score = torch.rand(batch, N, device="cuda", generator=g)
        ref = time_ms(
            lambda x=x, size=size, score=score: bipartite_merge(x, size, score, R), iters, warmup
        )
        ker = time_ms(
            lambda x=x, size=size, score=score: kernels.merge(x, size, score, R, library=library),
            iters,
            warmup,
        )
        name = "fp16" if dtype == torch.float16 else "fp32"
        rows.append(
            {
                "op": f"merge {name}",
                "batch": batch,
                "baseline": "bipartite_merge (eager PyTorch)",
                "kernel": ker,
                "reference": ref,
                "ratio_vs_reference": ker["median_ms"] / ref["median_ms"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("bench_kernels.json"))
    parser.add_argument(
        "--library",
        default=None,
        help="libvidtldr_kernels file or folder (default: $VIDTLDR_PLUGIN_DIR, then plugins/build)",
    )
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "bench_kernels: no CUDA GPU available (torch.cuda.is_available() is False); nothing to time.",
            file=sys.stderr,
        )
        return 2
    from vidtldr_deploy.errors import VidTLDRError

    try:
        rows = [
            row for b in args.batch for row in bench_batch(b, args.iters, args.warmup, args.library)
        ]
    except VidTLDRError as exc:
        print(f"bench_kernels: {exc}", file=sys.stderr)
        return 1

    device = torch.cuda.get_device_name()
    print(
        f"device: {device}   shape: N={N} C={C} H={H} D={D} r={R}   median of {args.iters} iterations"
    )
    print(f"{'op':<15}{'batch':>6}{'kernel ms':>12}{'baseline ms':>13}{'ratio':>8}  baseline")
    for row in rows:
        print(
            f"{row['op']:<15}{row['batch']:>6}{row['kernel']['median_ms']:>12.3f}"
            f"{row['reference']['median_ms']:>13.3f}{row['ratio_vs_reference']:>8.2f}  {row['baseline']}"
        )
    report = {
        "device": device,
        "capability": list(torch.cuda.get_device_capability()),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "shape": {"N": N, "C": C, "H": H, "D": D, "r": R},
        "iters": args.iters,
        "warmup": args.warmup,
        "results": rows,
    }
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
