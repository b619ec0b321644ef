"""Triton under load: static batch 1, static batch 4 and dynamic batching up to 4, at several
concurrencies, against one real tritonserver on 127.0.0.1.

    python benchmarks/bench_triton.py [--arch umt-tiny] [--concurrency 1 4 8] [--duration 5]
        [--max-queue-delay-us 2000] [--json benchmarks/results/triton.json] [--smoke]

The server is nvidia-pytriton's tritonserver 2.51 with its Python backend (CPU), set up by
tests/serve/real_triton.py (`python tests/serve/real_triton.py install` first). It has no
onnxruntime backend, so each repository written by `vidtldr triton` serves its exported graph
through the tests' ONNX Runtime stand-in (tests/serve/triton_ort_standin.py: one ORT session, one
intra-op thread per model instance, requests the dynamic batcher grouped run as one batch).
Random-weight model, seeded clips; each row is `vidtldr triton-client`'s load test
(serve.client.infer) for --duration seconds with K workers, plus the server's own counts of
inferences and executions (executions < inferences: the dynamic batcher grouped requests).
Timings depend on the machine: a reading, not a test. --smoke: one short run per row (CI).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, print_table, random_model, write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serve"))

import real_triton  # noqa: E402

from vidtldr_deploy.export.metadata import ExportSpec  # noqa: E402
from vidtldr_deploy.export.onnx_export import export_onnx  # noqa: E402
from vidtldr_deploy.serve import client  # noqa: E402
from vidtldr_deploy.serve.triton import RepositoryOptions, build_repository  # noqa: E402

# name -> (static batch or None, max_batch for a dynamic one, clips per request)
SETUPS = {
    "static_b1": (1, None, 1),
    "static_b4": (4, None, 4),
    "dynamic_max4": (None, 4, 1),
}


def _repositories(loaded, schedule_text: str, folder: Path, delay_us: int) -> list[Path]:
    schedule = loaded.schedule(schedule_text)
    repos = []
    for name, (batch, max_batch, _) in SETUPS.items():
        spec = ExportSpec(loaded.arch, loaded.frames, batch or max_batch, schedule, "onnx",
                          max_batch=max_batch)  # fmt: skip
        graph = folder / f"{name}.onnx"
        export_onnx(loaded.model, spec, graph)
        repo = folder / f"repo_{name}"
        opts = RepositoryOptions(
            name=name, device="cpu", max_queue_delay_us=delay_us if max_batch else None
        )
        build_repository([graph], repo, opts)
        real_triton.use_ort_standin(repo, name)
        repos.append(repo)
    return repos


def _counts(server, name: str) -> tuple[int, int]:
    stats = server.statistics(name)
    return stats["inference_count"], stats["execution_count"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="umt-tiny")
    ap.add_argument("--frames", type=int, default=None, help="default: the architecture's")
    ap.add_argument("--schedule", default="0.25x2")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per row")
    ap.add_argument("--max-queue-delay-us", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="benchmarks/results/triton.json")
    ap.add_argument("--smoke", action="store_true", help="0.3 s per row, concurrency 1 and 4 (CI)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.concurrency, args.duration = [1, 4], 0.3
    reason = real_triton.missing()
    if reason:
        print(f"bench_triton: {reason}. Nothing was measured.", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    from vidtldr_deploy.clips.recipe import frames_for

    loaded = random_model(args.arch, frames_for(args.arch, args.frames), args.seed)
    side = loaded.model.cfg.img_size
    rng = np.random.default_rng(args.seed)
    rows, table = [], []
    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp:
        folder = Path(tmp)
        print("... exporting the graphs and writing the repositories", file=sys.stderr, flush=True)
        repos = _repositories(loaded, args.schedule, folder, args.max_queue_delay_us)
        (folder / "server").mkdir()
        with real_triton.TritonServer(repos, folder / "server") as server:
            states = {n: m.get("state") for n, m in server.models().items()}
            if any(states.get(name) != "READY" for name in SETUPS):
                print(f"bench_triton: models not ready: {states}\n{server.log_tail()}",
                      file=sys.stderr)  # fmt: skip
                return 3
            for name, (_, _, clips) in SETUPS.items():
                video = rng.standard_normal((clips, 3, loaded.frames, side, side), np.float32)
                request = [client.tensor_inputs({"video": video})]
                for k in args.concurrency:
                    print(f"... {name}, concurrency {k}", file=sys.stderr, flush=True)
                    before = _counts(server, name)
                    plan = client.LoadPlan(concurrency=k, duration_s=args.duration)
                    s = client.infer(name, request, url=server.url, plan=plan).summary()
                    after = _counts(server, name)
                    inferences, executions = (a - b for a, b in zip(after, before))
                    row = {"setup": name, "concurrency": k, "clips_per_request": clips,
                           **s, "clips_per_s": s["throughput_rps"] * clips,
                           "server_inferences": inferences, "server_executions": executions}  # fmt: skip
                    rows.append(row)
                    table.append([
                        name, str(k), f"{s['requests']:.0f}", f"{row['clips_per_s']:.1f}",
                        f"{s['p50_ms']:.2f}", f"{s['p90_ms']:.2f}", f"{s['p99_ms']:.2f}",
                        f"{inferences / max(executions, 1):.2f}",
                    ])  # fmt: skip
            startup = server.startup_s
    print(f"\n{args.arch} (random weights), {loaded.frames} frames, schedule {args.schedule!r}, "
          f"ONNX Runtime stand-in in tritonserver {real_triton.SERVER_VERSION} (Python backend, "
          f"CPU), {args.duration:g} s per row; server start-up {startup:.2f} s")  # fmt: skip
    print(f"machine: {machine()}\n")
    print_table(["setup", "workers", "requests", "clips/s", "p50 ms", "p90 ms", "p99 ms",
                 "clips/exec"], table)  # fmt: skip
    write_json(args.json, {
        "benchmark": "bench_triton",
        "command": " ".join(["python", "benchmarks/bench_triton.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "server": {"version": real_triton.SERVER_VERSION, "startup_s": startup,
                   "backend": "python (ONNX Runtime stand-in)", "device": "cpu"},
        "arch": args.arch, "frames": loaded.frames, "schedule": args.schedule,
        "duration_s": args.duration, "max_queue_delay_us": args.max_queue_delay_us,
        "wall_seconds": time.perf_counter() - t0,
        "rows": rows,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
