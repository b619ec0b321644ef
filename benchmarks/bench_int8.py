"""ONNX Runtime on CPU: INT8 Q/DQ on top of merging, UMT-B with random weights.

    python benchmarks/bench_int8.py [--frames 4] [--schedule 300,100] [--threads 2]
        [--iterations 20] [--warmup 3] [--merge-impl plugin|onnx] [--calibration-clips 4]
        [--eval-clips 2] [--seed 0] [--near-merges fp32|int8|both]
        [--json benchmarks/results/int8_ort_cpu.json]
    python benchmarks/bench_int8.py --msrvtt   # 12 frames, schedule preset msrvtt (slow export)

Four graphs, exported with `vidtldr_deploy.export` and quantized with
`vidtldr_deploy.export.quantize` (static QDQ, per-channel, weight MatMuls + Conv only, merge
islands fp32): fp32 unmerged (baseline), fp32 merged, INT8 unmerged, INT8 merged. They run in one
process on the same seeded clip, interleaved (ABBA over all four), and the table gives medians and
speedups over the fp32 unmerged median. Accuracy: pooled cosine of INT8 merged against PyTorch fp32
merged on `--eval-clips` seeded clips (not the calibration clips), and the fraction of merge
decisions that agree with PyTorch fp32 (vidtldr_deploy.validate.int8); the fp32 merged graph's own
agreement is printed as the floor that ORT-vs-PyTorch arithmetic alone gives. Random weights and
random calibration clips: a latency and plumbing reading, not an accuracy claim for real video.

--near-merges: the weight layers feeding the hidden state that enters a merge island
(QuantizeSettings.keep_fp32_near_merges) stay fp32 (`fp32`, the default), are quantized like the
rest (`int8`, the setting before that option), or `both`: a fifth graph, "int8 merged (all)", is
quantized the old way and timed and checked next to the new one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_umt_b_args, machine, print_table, umt_b_setup, write_json

from vidtldr_deploy.export.quantize import QuantizeSettings, quantize_graph
from vidtldr_deploy.profile.runtimes import export_temp_onnx
from vidtldr_deploy.profile.stats import latency_stats
from vidtldr_deploy.profile.timing import TimedModel, interleaved_timing
from vidtldr_deploy.validate.int8 import INT8_TOLERANCES, validate_int8
from vidtldr_deploy.validate.metrics import cosine_similarity

TARGETS = {"int8_merged_speedup": 3.5, "cosine": 0.999, "agreement": 0.99}


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_umt_b_args(ap, iterations=20, warmup=3, clips=4)
    ap.add_argument("--near-merges", default="fp32", choices=["fp32", "int8", "both"])
    ap.add_argument("--workdir", default=None, help="keep the graphs here (default: a temp dir)")
    ap.add_argument("--json", default="benchmarks/results/int8_ort_cpu.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    bench = umt_b_setup(args)
    log = lambda msg: print(f"... {msg}", file=sys.stderr, flush=True)  # noqa: E731
    loaded = bench.loaded
    merged, baseline, calib, evals = bench.merged, bench.baseline, bench.calib, bench.evals

    tmp = tempfile.TemporaryDirectory(prefix="bench-int8-")
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    quant: dict[str, dict] = {}
    keep = args.near_merges != "int8"
    for key, schedule in (("unmerged", baseline), ("merged", merged)):
        log(f"export fp32 {key}")
        fp32 = export_temp_onnx(loaded, schedule, 1, args.merge_impl, work / f"fp32_{key}.onnx")
        paths[f"fp32 {key}"] = fp32
        variants = [(f"int8 {key}", keep)]
        if key == "merged" and args.near_merges == "both":
            variants.append(("int8 merged (all)", False))
        for label, keep_fp32 in variants:
            log(f"quantize {label}")
            result = quantize_graph(
                fp32, work / f"{label.replace(' ', '_').strip('()')}.onnx", calib,
                f"{len(calib)} seeded random clips (seed {args.seed + 1000})",
                QuantizeSettings(keep_fp32_near_merges=keep_fp32),
            )  # fmt: skip
            quant[label] = {"seconds": result.seconds, "nodes": len(result.quantized_nodes),
                            "kept_fp32": result.kept_fp32_nodes,
                            "violations": result.violations}  # fmt: skip
            paths[label] = Path(result.output)

    order = ["fp32 unmerged", "fp32 merged", "int8 unmerged", "int8 merged"]
    order += [k for k in paths if k not in order]
    video = evals[0]
    sessions = {k: _session(paths[k], args.threads) for k in order}
    feeds = {k: {s.get_inputs()[0].name: video} for k, s in sessions.items()}
    candidates = [TimedModel(k, (lambda k=k: sessions[k].run(None, feeds[k]))) for k in order]
    log(f"timing {args.iterations} interleaved iterations x {len(order)} graphs")
    times = interleaved_timing(candidates, args.iterations, args.warmup)
    stats = {k: latency_stats(times[k]) for k in order}
    base = stats["fp32 unmerged"]["latency_ms"]["median"]
    speedups = {k: base / stats[k]["latency_ms"]["median"] for k in order}

    log("accuracy: every graph against PyTorch fp32 with the same schedule")
    vals = {k: validate_int8(paths[k], loaded, baseline if "unmerged" in k else merged, evals)
            for k in order}  # fmt: skip
    int8_val, fp32_val = vals["int8 merged"], vals["fp32 merged"]
    pooled = next(o for o in int8_val.validation.outputs if o.name == "pooled")
    worst_cos = {
        k: next(o for o in v.validation.outputs if o.name == "pooled").metrics["cosine"]
        for k, v in vals.items()
    }
    cosine = pooled.metrics["cosine"]
    # Pooled over the eval clips as one vector set (the brief's "pooled cosine"): the mean.
    pooled_mean_cos = float(np.mean([
        cosine_similarity(a[None], b[None]) for a, b in zip(*_pooled_pairs(loaded, merged, evals,
                                                                          paths["int8 merged"]))
    ]))  # fmt: skip

    rows = [[k, f"{stats[k]['latency_ms']['median']:.1f}", f"{stats[k]['latency_ms']['p90']:.1f}",
             f"{speedups[k]:.2f}x", f"{worst_cos[k]:.5f}",
             "-" if "unmerged" in k else f"{vals[k].agreement:.2%}"] for k in order]  # fmt: skip
    print(f"\n{args.arch} (random weights), {args.frames} frames, batch 1, schedule "
          f"{args.schedule!r} (tokens {merged.layers[0].tokens_in} -> {merged.tokens_out}), "
          f"merge-impl {args.merge_impl}, ONNX Runtime CPU, {args.threads} threads, "
          f"{args.iterations} interleaved iterations after {args.warmup} warm-up")  # fmt: skip
    print(f"machine: {machine()}\n")
    print_table(["graph", "median ms", "p90 ms", "speedup vs fp32 unmerged",
                 "pooled cosine (worst clip)", "merge agreement"], rows)  # fmt: skip
    print(f"near merges: {args.near_merges}; kept fp32: {quant['int8 merged']['kept_fp32']}")
    print(f"\nINT8 merged vs PyTorch fp32 merged: pooled cosine {cosine:.5f} (worst clip), "
          f"mean {pooled_mean_cos:.5f}; rel_l2 {pooled.metrics['rel_l2']:.3g}; "
          f"within INT8 tolerances: {int8_val.validation.passed}")  # fmt: skip
    print(f"merge-decision agreement with PyTorch fp32: INT8 {int8_val.agreement:.2%} "
          f"(per layer {[round(a.pairs, 4) for a in int8_val.decisions]}); fp32 graph "
          f"{fp32_val.agreement:.2%}")  # fmt: skip
    met = {
        "int8_merged_speedup": speedups["int8 merged"] >= TARGETS["int8_merged_speedup"],
        "cosine": cosine >= TARGETS["cosine"],
        "agreement": int8_val.agreement >= TARGETS["agreement"],
    }
    print(f"targets {TARGETS}: {met}")
    write_json(args.json, {
        "benchmark": {
            "name": "bench_int8",
            "command": " ".join(["python", "benchmarks/bench_int8.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine(), "threads": args.threads,
            "wall_seconds": time.perf_counter() - t0,
        },
        "arch": args.arch, "frames": args.frames, "schedule": merged.to_dict(),
        "merge_impl": args.merge_impl,
        "latency": {k: stats[k] for k in order}, "speedup_vs_fp32_unmerged": speedups,
        "quantization": quant, "tolerances": INT8_TOLERANCES.to_dict(),
        "int8_merged": int8_val.to_dict(),
        "fp32_merged_decisions": fp32_val.to_dict()["merge_decisions"],
        "pooled_cosine_worst": cosine, "pooled_cosine_mean": pooled_mean_cos,
        "near_merges": args.near_merges,
        "per_graph": {k: {"pooled_cosine_worst": worst_cos[k], "agreement": vals[k].agreement,
                          "layers": [a.to_dict() for a in vals[k].decisions]}
                      for k in order},
        "targets": TARGETS, "meets": met,
    })  # fmt: skip
    tmp.cleanup()
    return 0


def _pooled_pairs(loaded, schedule, videos, graph: Path):
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.runtime.pytorch import torch_outputs
    from vidtldr_deploy.validate.run import run_batches

    with OnnxRuntimeRunner(graph) as runner:
        got = run_batches(runner, list(videos)).outputs["pooled"]
    ref = np.concatenate([torch_outputs(loaded.model, schedule.rs, v)["pooled"] for v in videos])
    return ref, got


if __name__ == "__main__":
    sys.exit(main())
