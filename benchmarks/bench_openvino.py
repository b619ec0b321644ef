"""OpenVINO on CPU against ONNX Runtime, side by side in one process: UMT-B with random weights.

    python benchmarks/bench_openvino.py [--frames 4] [--schedule 300,100] [--threads 2]
        [--iterations 8] [--warmup 2] [--merge-impl plugin|onnx] [--eval-clips 2]
        [--calibration-clips 2] [--json benchmarks/results/openvino_cpu.json]
    python benchmarks/bench_openvino.py --msrvtt   # 12 frames, schedule preset msrvtt
    python benchmarks/bench_openvino.py --smoke    # umt-tiny, one iteration, one clip (CI)

Timed interleaved (ABBA over all of them) on the same seeded clip: ONNX Runtime fp32 unmerged (the
common baseline) and merged, ONNX Runtime INT8 merged (Q/DQ, export/quantize.py), OpenVINO INT8
merged (the same Q/DQ graph), OpenVINO f32 unmerged and merged, OpenVINO bf16 unmerged and merged
(merge islands f32, the default) and OpenVINO bf16 merged with the islands in bf16 too. Speedups are
over the ONNX Runtime fp32 unmerged median of the same run.

Accuracy, on `--eval-clips` seeded clips against the PyTorch fp32 merged model: pooled cosine
(worst clip) and merge-decision agreement (validate/int8.py) of every merged OpenVINO variant, with
bf16 for each choice of what stays f32 (runtime/openvino.KEEP_F32), and the runtime precision the
CPU plugin actually gave the island nodes (its execution graph). Random weights: a latency and
plumbing reading, not an accuracy claim for real video.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import onnx
import openvino
from _common import add_umt_b_args, machine, print_table, umt_b_setup, write_json

from vidtldr_deploy.export.quantize import QuantizeSettings, quantize_graph
from vidtldr_deploy.profile.runtimes import export_temp_onnx
from vidtldr_deploy.profile.stats import latency_stats
from vidtldr_deploy.profile.timing import TimedModel, interleaved_timing
from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner
from vidtldr_deploy.runtime.openvino import (
    KEEP_F32,
    OpenVinoRunner,
    inline_merge_functions,
    keep_f32_nodes,
)
from vidtldr_deploy.validate.openvino import validate_openvino
from vidtldr_deploy.validate.tolerances import default_tolerances

# label -> (runtime, graph, precision, keep_f32)
TIMED = {
    "ort fp32 unmerged": ("onnxruntime", "unmerged", "fp32", None),
    "ort fp32 merged": ("onnxruntime", "merged", "fp32", None),
    "ort int8 merged": ("onnxruntime", "int8 merged", "fp32", None),
    "ov int8 merged": ("openvino", "int8 merged", "fp32", "islands"),
    "ov int8 merged (LPT on)": ("openvino", "int8 merged", "fp32", "lpt"),
    "ov f32 unmerged": ("openvino", "unmerged", "fp32", "islands"),
    "ov f32 merged": ("openvino", "merged", "fp32", "islands"),
    "ov bf16 unmerged": ("openvino", "unmerged", "bf16", "islands"),
    "ov bf16 merged": ("openvino", "merged", "bf16", "islands"),
    "ov bf16 merged (islands bf16)": ("openvino", "merged", "bf16", "none"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_umt_b_args(ap, iterations=8, warmup=2, clips=2)
    ap.add_argument("--json", default="benchmarks/results/openvino_cpu.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    bench = umt_b_setup(args)
    log = lambda msg: print(f"... {msg}", file=sys.stderr, flush=True)  # noqa: E731
    loaded = bench.loaded
    merged, baseline, calib, evals = bench.merged, bench.baseline, bench.calib, bench.evals

    tmp = tempfile.TemporaryDirectory(prefix="bench-openvino-")
    work = Path(tmp.name)
    log("export fp32 unmerged and merged")
    graphs = {
        "unmerged": export_temp_onnx(loaded, baseline, 1, "onnx", work / "unmerged.onnx"),
        "merged": export_temp_onnx(loaded, merged, 1, args.merge_impl, work / "merged.onnx"),
    }
    log("quantize merged to INT8 Q/DQ")
    graphs["int8 merged"] = Path(quantize_graph(
        graphs["merged"], work / "int8_merged.onnx", calib,
        f"{len(calib)} seeded random clips (seed {args.seed + 1000})", QuantizeSettings(),
    ).output)  # fmt: skip

    log("compiling")
    runners = {}
    for label, (runtime, graph, precision, keep) in TIMED.items():
        if runtime == "onnxruntime":
            runners[label] = OnnxRuntimeRunner(graphs[graph], "cpu", threads=args.threads)
        elif keep == "lpt":  # OpenVINO's INT8 kernels, which miscompute a merged graph (see runner)
            runners[label] = OpenVinoRunner(graphs[graph], "CPU", precision, args.threads,
                                            low_precision_transforms=True)  # fmt: skip
        else:
            runners[label] = OpenVinoRunner(graphs[graph], "CPU", precision, args.threads, keep)
    stack = contextlib.ExitStack()
    for runner in runners.values():
        stack.enter_context(runner)
    video = evals[0]
    candidates = [TimedModel(k, r.timed_step(video)) for k, r in runners.items()]
    log(f"timing {args.iterations} interleaved iterations x {len(candidates)} models")
    times = interleaved_timing(candidates, args.iterations, args.warmup)
    stats = {k: latency_stats(times[k]) for k in runners}
    median = {k: stats[k]["latency_ms"]["median"] for k in runners}
    base = median["ort fp32 unmerged"]
    pairs = {
        "ort fp32 merged / unmerged": median["ort fp32 unmerged"] / median["ort fp32 merged"],
        "ov f32 merged / unmerged": median["ov f32 unmerged"] / median["ov f32 merged"],
        "ov bf16 merged / unmerged": median["ov bf16 unmerged"] / median["ov bf16 merged"],
    }
    merged_graph = onnx.load(str(graphs["merged"]))
    islands = keep_f32_nodes(merged_graph, inline_merge_functions(merged_graph)[1], "islands")
    island_precision = runners["ov bf16 merged"].runtime_precisions(islands)
    stack.close()

    log("accuracy against PyTorch fp32 merged")
    accuracy = {}
    variants = [("f32", "fp32", "islands", "merged")]
    variants += [(f"bf16, keep f32: {k}", "bf16", k, "merged") for k in KEEP_F32]
    variants += [("int8 Q/DQ", "fp32", "islands", "int8 merged")]
    variants += [("int8 Q/DQ (LPT on)", "fp32", "lpt", "int8 merged")]
    if args.smoke:  # the plumbing of each kind of row, not every variant (CI time)
        variants = [v for v in variants if v[0] in ("f32", "bf16, keep f32: none", "int8 Q/DQ")]
    for label, precision, keep, graph in variants:
        v = validate_openvino(
            graphs[graph], loaded, merged, evals, default_tolerances(precision), precision,
            graph_precision="int8" if "int8" in graph else "fp32",
            keep_f32="islands" if keep == "lpt" else keep,
            low_precision_transforms=True if keep == "lpt" else None,
        )  # fmt: skip
        val = getattr(v, "validation", v)
        pooled = next(o for o in val.outputs if o.name == "pooled")
        accuracy[label] = {
            "pooled_cosine_worst": pooled.metrics["cosine"],
            "pooled_rel_l2": pooled.metrics["rel_l2"],
            "agreement": getattr(v, "agreement", None),
            "layers": [a.pairs for a in getattr(v, "decisions", [])],
            "passed": v.passed,
        }

    print(f"\n{args.arch} (random weights), {args.frames} frames, batch 1, schedule "
          f"{args.schedule!r} (tokens {merged.layers[0].tokens_in} -> {merged.tokens_out}), "
          f"merge-impl {args.merge_impl}, CPU, {args.threads} threads, {args.iterations} "
          f"interleaved iterations after {args.warmup} warm-up")  # fmt: skip
    print(f"machine: {machine()}\n")
    rows = [[k, f"{median[k]:.1f}", f"{stats[k]['latency_ms']['p90']:.1f}",
             f"{base / median[k]:.2f}x"] for k in runners]  # fmt: skip
    print_table(["model", "median ms", "p90 ms", "vs ORT fp32 unmerged"], rows)
    print("merged vs unmerged, same runtime and precision: "
          + "; ".join(f"{k} {v:.2f}x" for k, v in pairs.items()))  # fmt: skip
    print()
    rows = [[k, f"{a['pooled_cosine_worst']:.5f}", f"{a['pooled_rel_l2']:.3g}",
             "-" if a["agreement"] is None else f"{a['agreement']:.2%}"]
            for k, a in accuracy.items()]  # fmt: skip
    print_table(["OpenVINO merged", "pooled cosine (worst)", "rel L2", "merge agreement"], rows)
    print(
        f"bf16 merged, runtime precision of the island nodes (CPU execution graph): "
        f"{island_precision}"
    )
    write_json(args.json, {
        "benchmark": {
            "name": "bench_openvino",
            "command": " ".join(["python", "benchmarks/bench_openvino.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine(), "threads": args.threads,
            "wall_seconds": time.perf_counter() - t0,
        },
        "arch": args.arch, "frames": args.frames, "schedule": merged.to_dict(),
        "merge_impl": args.merge_impl, "openvino": openvino.__version__,
        "latency": stats, "speedup_vs_ort_fp32_unmerged": {k: base / m for k, m in median.items()},
        "merged_vs_unmerged": pairs, "accuracy": accuracy,
        "bf16_island_runtime_precision": island_precision,
    })  # fmt: skip
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
