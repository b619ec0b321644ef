"""The repositories `vidtldr triton` writes, served by a real tritonserver (2.51, CPU, Python
backend; tests/serve/real_triton.py). Its build has no onnxruntime or tensorrt backend: those
models must fail for that reason alone, and the ONNX model is served through the test-only ONNX
Runtime stand-in (tests/serve/triton_ort_standin.py) with the config the toolkit wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from vidtldr_deploy.serve.triton_config import parse_pbtxt

MISSING_BACKEND = "unable to find backend library for backend '{}'"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from support.videos import write_video

    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"c{i}.mp4", 12 + 4 * i) for i in range(2)]


@pytest.fixture(scope="module")
def validated(demo_graph, videos, tmp_path_factory):
    """`vidtldr validate --inputs` of the same files: its clips and ONNX Runtime's outputs."""
    from vidtldr_deploy.cli.main import app

    folder = tmp_path_factory.mktemp("validated")
    args = ["validate", str(demo_graph), "--save-outputs", str(folder / "out.npz")]
    args += ["--save-inputs", str(folder / "in.npz")]
    for v in videos:
        args += ["--inputs", str(v)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return folder / "in.npz", dict(np.load(folder / "out.npz"))


def _client(cli, server, model: str, *args):
    return cli("triton-client", model, "-u", server.url, *args)


def test_every_written_config_loads_or_fails_only_for_the_missing_backend(triton_server):
    models = triton_server.models()
    for name in ("demo_preprocess", "demo_ort", "demo_ort_preprocess", "demo_ort_ensemble"):
        assert models[name].get("state") == "READY", (name, models[name])
    for name, backend in [
        ("demo", "onnxruntime"), ("demo_plugin", "onnxruntime"),
        ("demo_plan", "tensorrt"), ("demo_plan_plugin", "tensorrt"),
    ]:  # fmt: skip
        assert models[name]["state"] == "UNAVAILABLE"
        assert models[name]["reason"] == (
            f"Invalid argument: {MISSING_BACKEND.format(backend)}, try specifying runtime on the "
            "model configuration."
        )
    # demo_ensemble waits on demo; its twin demo_ort_ensemble (same config but the names) is READY.
    assert "state" not in models["demo_ensemble"]


def test_the_stand_in_serves_the_config_vidtldr_wrote(triton_server):
    """Only platform -> backend differs, so READY under --strict-model-config=true means the
    server accepted the toolkit's inputs, outputs, instance group and warmup of the ONNX model."""
    repos = triton_server.repos
    written = parse_pbtxt((repos["ensemble"] / "demo" / "config.pbtxt").read_text())
    served = parse_pbtxt((repos["standin"] / "demo_ort" / "config.pbtxt").read_text())
    assert written.platform == "onnxruntime_onnx" and served.backend == "python"
    for field in ("input", "output", "instance_group", "model_warmup", "max_batch_size"):
        assert getattr(written, field) == getattr(served, field), field
    stats = triton_server.statistics("demo_ort")
    assert stats["inference_stats"]["success"]["count"] >= 0  # the server knows it as a model


def test_ensemble_equals_validate_of_the_same_files(
    cli, triton_server, videos, validated, tmp_path
):
    """bytes -> demo_ort_preprocess -> demo_ort through Triton's ensemble scheduler."""
    _, want = validated
    saved = tmp_path / "served.npz"
    args = ["--video", videos[0], "--video", videos[1], "--save-outputs", saved]
    r = _client(cli, triton_server, "demo_ort_ensemble", *args)
    assert r.exit_code == 0, r.output
    got = dict(np.load(saved))
    assert set(got) == {"tokens", "pooled"}
    for name in got:
        assert np.abs(got[name] - want[name]).max() <= 1e-5, name
    before = triton_server.statistics("demo_ort_preprocess")["inference_stats"]["success"]["count"]
    assert before >= 1  # the preprocessing model (no torch in its environment) did the decoding


def test_client_npz_inputs_and_latency_report(cli, triton_server, validated, tmp_path):
    clips, want = validated
    report = tmp_path / "latency.json"
    args = ["--inputs", clips, "--repeat", "3", "--save-outputs", tmp_path / "o.npz"]
    r = _client(cli, triton_server, "demo_ort", *args, "--report", report)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["pooled"], want["pooled"], atol=1e-5)
    data = json.loads(report.read_text())
    lat = data["latency"]
    assert data["kind"] == "triton-client" and lat["requests"] == 3
    assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert "| requests |" in report.with_suffix(".md").read_text()


def test_bounded_load_from_several_workers(cli, triton_server, validated, tmp_path):
    clips, _ = validated

    def successes():
        return triton_server.statistics("demo_ort")["inference_stats"]["success"]["count"]

    before = successes()
    report = tmp_path / "load.json"
    args = ["--inputs", clips, "--concurrency", "4", "--requests", "12", "--report", report]
    r = _client(cli, triton_server, "demo_ort", *args)
    assert r.exit_code == 0, r.output
    assert successes() - before == 12
    lat = json.loads(report.read_text())["latency"]
    assert lat["requests"] == 12 and lat["concurrency"] == 4 and lat["throughput_rps"] > 0

    r = _client(cli, triton_server, "demo_ort", "--inputs", clips, "--concurrency", "2",
                "--duration", "0.5", "--report", report)  # fmt: skip
    assert r.exit_code == 0, r.output
    lat = json.loads(report.read_text())["latency"]
    assert lat["requests"] >= 1 and 0.5 <= lat["wall_s"] < 0.5 + 10  # one request may be in flight


def test_a_bad_video_fails_its_request_only(cli, triton_server, videos, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    r = _client(cli, triton_server, "demo_ort_ensemble", "--video", garbage, "--video", videos[0])
    assert r.exit_code == 3 and "preprocess" in r.output  # the server failed the request
    assert triton_server.models()["demo_ort_preprocess"]["state"] == "READY"
    r = _client(cli, triton_server, "demo_ort_ensemble", "--video", videos[0], "--video", videos[1])
    assert r.exit_code == 0, r.output


def test_dynamic_batcher_groups_concurrent_clips_without_changing_them(
    cli, triton_server, videos, tmp_path
):
    """demo_dyn (export --max-batch 4): single-clip requests sent 8 at a time are grouped into
    batched executions of the ONNX Runtime stand-in, and each clip's outputs equal the ones it
    gets alone (sequential requests, batch 1)."""
    one = [tmp_path / "alone0.npz", tmp_path / "alone1.npz"]
    for video, saved in zip(videos, one):
        r = _client(
            cli, triton_server, "demo_dyn_ensemble", "--video", video, "--save-outputs", saved
        )
        assert r.exit_code == 0, r.output
    clips = tmp_path / "clips.npz"
    from vidtldr_deploy.clips import load_clips
    from vidtldr_deploy.clips.recipe import recipe_for

    batches = load_clips(videos, recipe_for("umt-tiny"), 4, 1).batches
    np.savez(clips, *[b.video for b in batches])
    before = triton_server.statistics("demo_dyn")
    r = _client(cli, triton_server, "demo_dyn", "--inputs", clips, "--concurrency", "8",
                "--requests", "32", "--save-outputs", tmp_path / "grouped.npz")  # fmt: skip
    assert r.exit_code == 0, r.output
    after = triton_server.statistics("demo_dyn")
    grouped = dict(np.load(tmp_path / "grouped.npz"))
    for i, saved in enumerate(one):
        alone = dict(np.load(saved))
        for name in alone:
            assert np.abs(grouped[name][i : i + 1] - alone[name]).max() <= 1e-5, name
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 32 and executions < inferences  # batched executions happened
