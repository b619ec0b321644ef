"""`vidtldr profile` and vidtldr_deploy/profile.py: report structure, statistics, errors.

Timings are never pass/fail thresholds here: only their structure and internal consistency are."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidtldr_deploy.cli.main import app
from vidtldr_deploy.constants import MergeImpl
from vidtldr_deploy.profile.stats import STATS, latency_stats, speedup
from vidtldr_deploy.profile.timing import TimedModel, interleaved_timing
from vidtldr_deploy.runtime.onnxruntime import parse_ort_profile

runner = CliRunner()
FAST = ["--iterations", "4", "--warmup", "1"]


# ------------------------------------------------------------------ latency statistics


def test_latency_stats_known_values():
    seconds = [0.001 * v for v in range(1, 101)]  # 1 .. 100 ms
    out = latency_stats(seconds, batch=4)
    lat = out["latency_ms"]
    assert lat["min"] == pytest.approx(1.0)
    assert lat["max"] == pytest.approx(100.0)
    assert lat["mean"] == pytest.approx(50.5)
    assert lat["median"] == pytest.approx(50.5)
    assert lat["p90"] == pytest.approx(90.1)  # linear interpolation: 1 + 0.9 * 99
    assert lat["p99"] == pytest.approx(99.01)
    assert out["throughput"] == pytest.approx(4 / 0.0505)
    assert out["iterations"] == 100


def test_latency_stats_single_and_constant():
    one = latency_stats([0.002])
    assert all(one["latency_ms"][s] == pytest.approx(2.0) for s in STATS)
    assert one["throughput"] == pytest.approx(500.0)
    const = latency_stats([0.01] * 7, batch=2)
    assert const["latency_ms"]["p99"] == pytest.approx(10.0)
    assert const["throughput"] == pytest.approx(200.0)


def test_latency_stats_ordered_on_skewed_samples():
    rng = np.random.default_rng(0)
    lat = latency_stats(rng.lognormal(-5, 1, size=37))["latency_ms"]
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]


@pytest.mark.parametrize("bad", [[], [float("nan")], [-0.1]])
def test_latency_stats_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        latency_stats(bad)


def test_speedup_is_baseline_median_over_merged_median():
    base = latency_stats([0.010, 0.020, 0.030])
    merged = latency_stats([0.005, 0.010, 0.100])
    assert speedup(base, merged) == pytest.approx(2.0)


def test_interleaved_alternates_abba():
    calls: list[str] = []
    cands = [
        TimedModel("merged", lambda: calls.append("m")),
        TimedModel("baseline", lambda: calls.append("b")),
    ]
    times = interleaved_timing(cands, iterations=4, warmup=1)
    assert calls[:2] == ["m", "b"]  # one warm-up call each
    assert "".join(calls[2:]) == "mbbmmbbm"
    assert {k: len(v) for k, v in times.items()} == {"merged": 4, "baseline": 4}


def test_parse_ort_profile_groups_ops_and_merge_subgraph():
    def node(name, op, ts, dur):
        return {
            "cat": "Node",
            "name": f"{name}_kernel_time",
            "ts": ts,
            "dur": dur,
            "args": {"op_name": op},
        }

    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        node("n0", "MatMul", 10, 50),  # first run: skipped
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        node("node_matmul", "MatMul", 210, 40),
        node("_inlfunc_Saliency_n3", "Softmax", 250, 6),
        node("_inlfunc_Merge_n7", "TopK", 260, 4),
        {"cat": "Session", "name": "model_run", "ts": 400, "dur": 100},
        node("node_matmul", "MatMul", 410, 60),
        node("_inlfunc_Merge_n7", "TopK", 470, 2),
    ]
    out = parse_ort_profile(events, skip_runs=1)
    assert out["runs"] == 2
    assert out["by_op_type"]["MatMul"] == pytest.approx(0.05)  # (40 + 60) us / 2 runs, in ms
    assert out["merge_subgraph"]["Saliency"] == pytest.approx(0.003)
    assert out["merge_subgraph"]["Merge"] == pytest.approx(0.003)
    assert out["nodes_ms"] == pytest.approx(0.056)
    # standard-op merge steps, named by the graph's metadata (merge_step_nodes)
    out = parse_ort_profile(events, skip_runs=1, node_parts={"node_matmul": "Saliency"})
    assert out["merge_subgraph"]["Saliency"] == pytest.approx(0.053)


def test_merge_step_nodes_from_exported_metadata(tmp_path):
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source
    from vidtldr_deploy.runtime.onnxruntime import merge_step_nodes

    loaded = load_source("demo-random", None, None, None, False, 0)
    schedule = loaded.schedule("16")
    spec = ExportSpec(arch=loaded.arch, frames=loaded.frames, batch=1, schedule=schedule, merge_impl="onnx",
                      opset=18, checkpoint_sha256=loaded.sha256, checkpoint=loaded.label)  # fmt: skip
    path = tmp_path / "m.onnx"
    graph = export_onnx(loaded.model, spec, path)
    parts = merge_step_nodes(path)
    assert set(parts.values()) == {"Saliency", "Merge"}  # one merge layer: both steps found
    ops = {n.name: n.op_type for n in graph.graph.node}
    assert "Log" in {ops[n] for n, p in parts.items() if p == "Saliency"}  # the entropy
    assert "TopK" in {ops[n] for n, p in parts.items() if p == "Merge"}


# ------------------------------------------------------------------ the command


def _check_report(data: dict, runtime: str) -> None:
    assert data["kind"] == "profile"
    assert data["runtime"] == runtime
    assert data["device"] == "cpu"
    assert data["batch"] == 1
    assert data["precision"] == "fp32"
    for key in ("baseline", "merged"):
        entry = data[key]
        lat = entry["latency_ms"]
        assert set(STATS) <= set(lat)
        assert all(lat[s] > 0 and math.isfinite(lat[s]) for s in STATS)
        assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert entry["throughput"] > 0
        assert entry["iterations"] == 4
        assert len(entry["samples_ms"]) == 4
    assert data["speedup"] > 0
    assert data["speedup"] == pytest.approx(
        data["baseline"]["latency_ms"]["median"] / data["merged"]["latency_ms"]["median"]
    )
    flops = data["flops"]
    assert 0 < flops["merged"] < flops["baseline"]
    assert flops["ratio"] == pytest.approx(flops["merged"] / flops["baseline"])
    layers = data["schedule"]["layers"]
    assert data["schedule"]["spec"] == "0.25x2"
    assert [row["r"] for row in layers] == [16, 12, 0, 0]


def test_profile_demo_torch_cpu(tmp_path):
    report, plot = tmp_path / "p.json", tmp_path / "p.png"
    res = runner.invoke(app, ["profile", "demo-random", "--runtime", "torch", "--device", "cpu", *FAST,
                              "--json", str(report), "--plot", str(plot)])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    _check_report(data, "torch")
    assert data["merge_impl"] == "custom_op"
    bd = data["merged"]["breakdown"]
    assert [row["layer"] for row in bd["layers"]] == [0, 1, 2, 3]
    # the merge layers' saliency and merge are timed; the layers without merging have none
    assert bd["layers"][0]["saliency"] > 0 and bd["layers"][0]["merge"] > 0
    assert bd["layers"][3]["saliency"] == 0 and bd["layers"][3]["merge"] == 0
    assert data["baseline"]["breakdown"]["parts"]["merge"] == 0
    assert 0 < bd["merge_share"] < 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.with_suffix(".md").read_text()
    assert "## Latency" in md and "speedup" in md


def test_profile_demo_onnxruntime_cpu(tmp_path):
    report = tmp_path / "o.json"
    res = runner.invoke(
        app, ["profile", "demo-random", "--runtime", "onnxruntime", *FAST, "--json", str(report)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    _check_report(data, "onnxruntime")
    assert data["merge_impl"] == "plugin"
    bd = data["merged"]["breakdown"]
    # the Saliency / Merge local functions are visible in the session profile of the merged graph
    assert bd["parts"]["saliency"] > 0 and bd["parts"]["merge"] > 0
    assert data["baseline"]["breakdown"]["parts"]["merge"] == 0
    assert bd["ops"] and all(op["ms"] >= 0 for op in bd["ops"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_profile_cuda_without_cuda_is_a_clear_error():
    res = runner.invoke(app, ["profile", "demo-random", "--device", "cuda", *FAST])
    assert res.exit_code != 0
    assert "cuda" in res.output.lower() and "--device cpu" in res.output
    assert "Traceback" not in res.output


def test_profile_onnxruntime_cuda_without_gpu_package():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed")
    res = runner.invoke(
        app, ["profile", "demo-random", "--runtime", "onnxruntime", "--device", "cuda", *FAST]
    )
    assert res.exit_code != 0
    assert "onnxruntime-gpu" in res.output
    assert "vidtldr-deploy[gpu]" in res.output.replace("\n", "")  # not eaten as console markup


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runtime", "onnxruntime", "--precision", "fp16"], "fp32"),
        (["--runtime", "nope"], "--runtime"),
        (["--iterations", "0"], "--iterations"),
        (["--merge-impl", "plugin"], "--merge-impl"),
    ],
)
def test_profile_bad_options(args, message):
    res = runner.invoke(app, ["profile", "demo-random", *args])
    assert res.exit_code != 0
    assert message in res.output


# ------------------------------------------------------------------ the fast GPU path (CPU-side checks)


def test_cuda_op_implementations_match_reference_maths():
    """The CUDA implementations' fallback (no kernel library) is the reference maths; called
    directly on CPU tensors they must agree with the ops' default implementations."""
    from vidtldr_deploy.core import ops
    from vidtldr_deploy.runtime import torch_cuda_ops

    torch_cuda_ops.register()
    torch_cuda_ops.register()  # idempotent
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 10, 4, generator=gen), torch.randn(2, 3, 10, 4, generator=gen)
    x, size = torch.randn(2, 10, 8, generator=gen), torch.rand(2, 10, generator=gen) + 0.5
    with torch_cuda_ops.reference_maths():
        score = torch_cuda_ops.saliency_cuda(q, k, 0.5)
        got = torch_cuda_ops.merge_cuda(x, size, score, 3)
    torch.testing.assert_close(score, ops.saliency(q, k, 0.5))
    want = ops.merge(x, size, score, 3)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    x0, s0 = torch_cuda_ops.merge_cuda(x, size, score, 0)
    assert x0.data_ptr() != x.data_ptr() and torch.equal(x0, x)  # outputs never alias inputs
    status = torch_cuda_ops.status()
    assert status["registered"] is True


def test_use_fast_path_sets_custom_op_schedule():
    from vidtldr_deploy.models.source import load_source
    from vidtldr_deploy.runtime import torch_cuda_ops

    model = load_source("demo-random").model
    torch_cuda_ops.use_fast_path(model, [16, 12, 0, 0])
    assert model.merge_impl is MergeImpl.CUSTOM and model.rs == [16, 12, 0, 0]
    with torch.inference_mode():
        tokens, pooled = model(torch.randn(1, 3, 4, 32, 32))
    assert tokens.shape == (1, 36, 64) and torch.isfinite(pooled).all()


def test_profile_exported_graph_rebuilds_from_metadata(tmp_path):
    """An .onnx target: the model and schedule come from the graph's metadata, the batch too."""
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source

    loaded = load_source("demo-random")
    sched = loaded.schedule("0.25x2")
    graph = tmp_path / "demo.onnx"
    spec = ExportSpec(
        arch=loaded.arch, frames=loaded.frames, batch=2, schedule=sched, checkpoint=loaded.label
    )
    export_onnx(loaded.model, spec, graph)
    report = tmp_path / "g.json"
    res = runner.invoke(app, ["profile", str(graph), "--runtime", "onnxruntime", "--no-layers", *FAST,
                              "--json", str(report)])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["batch"] == 2 and data["merge_impl"] == "onnx"
    assert [row["r"] for row in data["schedule"]["layers"]] == [16, 12, 0, 0]
    assert "breakdown" not in data["merged"]
    res = runner.invoke(app, ["profile", str(graph), "--batch", "1", *FAST])
    assert res.exit_code != 0 and "static batch of 2" in res.output


# ------------------------------------------------------------------ warnings, --duration, --threads, logs


def test_timing_warnings_name_the_unstable_model():
    from vidtldr_deploy.profile.warnings import gain_warnings, timing_warnings

    steady, noisy = [10.0, 10.1, 9.9, 10.0], [5.0, 15.0, 5.0, 15.0]
    out = timing_warnings({"merged": noisy, "baseline": steady})
    assert len(out) == 1 and "merged" in out[0] and "--iterations" in out[0]
    assert timing_warnings({"merged": steady, "baseline": steady}) == []
    assert any("ideal speedup" in w for w in gain_warnings(1.05, 1.2, 5000))
    assert any("too small to gain" in w for w in gain_warnings(2.0, 0.9, 64))
    assert gain_warnings(1.7, 0.9, 2352) == []  # a real-size model that is slower is a finding


def test_duration_runs_at_least_iterations_then_until_the_time_is_spent():
    import time

    calls: list[str] = []
    cands = [TimedModel("merged", lambda: (calls.append("m"), time.sleep(0.002))),
             TimedModel("baseline", lambda: calls.append("b"))]  # fmt: skip
    times = interleaved_timing(cands, iterations=2, warmup=0, duration=0.05)
    assert len(times["merged"]) == len(times["baseline"]) > 2
    assert len(times["merged"]) % 2 == 0  # whole ABBA pairs
    assert sum(times["merged"]) + sum(times["baseline"]) >= 0.04
    many = interleaved_timing(cands, iterations=6, warmup=0, duration=1e-6)
    assert len(many["merged"]) == 6  # at least --iterations
    with pytest.raises(Exception, match="--duration"):
        interleaved_timing(cands, iterations=1, warmup=0, duration=0)


def test_progress_off_a_terminal_prints_periodic_lines(monkeypatch):
    from vidtldr_deploy.cli import console as con

    printed: list[str] = []
    monkeypatch.setattr(con, "info", printed.append)
    monkeypatch.setattr(type(con.console), "is_terminal", property(lambda self: False))

    class FakeProgress:
        def add_task(self, description, total):
            return 1

        def advance(self, task):
            pass

        def remove_task(self, task):
            pass

    now = [0.0]
    phase = con.rich_progress_callback(FakeProgress(), clock=lambda: now[0])
    advance = phase("timing (interleaved)", 100)
    for _ in range(100):
        now[0] += 0.5  # 50 s in all: a line every 10 s, no more
        advance()
    assert printed[0] == "timing (interleaved) (100 steps)"
    assert 4 <= len(printed) - 1 <= 5 and "40/100" in printed[2]
    phase("building the engine", 1)
    assert printed[-1] == "building the engine (1 step)"


def test_profile_threads_duration_and_warnings_in_the_report(tmp_path):
    report = tmp_path / "t.json"
    res = runner.invoke(app, ["profile", "demo-random", "--runtime", "onnxruntime", "--no-layers", *FAST,
                              "--threads", "1", "--duration", "0.2", "--report", str(report)])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["environment"]["threads"] == 1 and data["environment"]["torch_threads"] == 1
    assert data["environment"]["onnxruntime_intra_op_threads"] == 1
    assert data["duration_s"] == 0.2 and data["merged"]["iterations"] >= 4
    assert data["iterations"] == data["merged"]["iterations"]
    # the demo (64 tokens) is too small to gain: said on the console and in the report
    assert isinstance(data["warnings"], list)
    if data["speedup"] <= 1.0:
        assert any("too small to gain" in w for w in data["warnings"])
    for w in data["warnings"]:
        assert w.split(":")[0] in " ".join(res.output.split())
    md = report.with_suffix(".md").read_text()
    for text in ("ideal from FLOPs", "% of ideal", "merge impl", "iterations", "## Environment",
                 "onnxruntime_intra_op_threads", "## Latency", "schedule `0.25x2`"):  # fmt: skip
        assert text in md, text
    if data["warnings"]:
        assert "## Warnings" in md


def test_profile_markdown_holds_the_breakdown_table(tmp_path):
    report = tmp_path / "b.json"
    res = runner.invoke(app, ["profile", "demo-random", *FAST, "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "schedule '0.25x2'" in res.output  # the demo says which schedule it used
    md = report.with_suffix(".md").read_text()
    assert "## Where the time goes" in md and "| saliency |" in md and "## Per layer" in md
