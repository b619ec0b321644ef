"""`--runtime openvino` on evaluate and tune (validate and profile: tests/runtime/test_openvino.py),
on the demo model and tiny real video files."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openvino")

from support.videos import write_video_folder  # noqa: E402

pytestmark = pytest.mark.video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_video_folder(tmp_path_factory.mktemp("videos"), 2)


def test_evaluate_graph_in_openvino_matches_onnxruntime(cli, demo_graphs, videos, tmp_path):
    reports = {rt: tmp_path / f"{rt}.json" for rt in ("onnxruntime", "openvino")}
    for rt, report in reports.items():
        result = cli("evaluate", demo_graphs["plugin"], "--runtime", rt, "--clips", videos,
                     "--report", report)  # fmt: skip
        assert result.exit_code == 0, result.output
    ov, ort = (
        json.loads(reports[k].read_text())["schedules"][0] for k in ("openvino", "onnxruntime")
    )
    assert "openvino" in ov["schedule"] and "onnxruntime" in ort["schedule"]
    assert ov["metrics"]["cosine_mean"] == pytest.approx(ort["metrics"]["cosine_mean"], abs=1e-5)


def test_evaluate_runtime_refused_for_pytorch_targets(cli, videos):
    result = cli("evaluate", "demo-random", "--runtime", "openvino", "--clips", videos)
    assert result.exit_code == 2


def test_tune_latency_budget_timed_in_openvino(cli, videos, tmp_path):
    report = tmp_path / "t.json"
    result = cli("tune", "demo-random", "--clips", videos, "--target-latency-ms", "1000",
                 "--runtime", "openvino", "--device", "CPU", "--beam-width", "1", "--report", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert len(data["cost_model"]["samples"]) >= 3 and data["cost_model"]["fixed_ms"] > 0
    assert data["meets_budget"]
