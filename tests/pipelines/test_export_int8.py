"""`vidtldr export --precision int8`: the Q/DQ graph, its calibration and its validation, through the
CLI on the tiny demo model and real (tiny) video files."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from support.videos import write_video_folder
from vidtldr_deploy.cli.main import app
from vidtldr_deploy.export.merge_islands import merge_island_violations
from vidtldr_deploy.export.metadata import read_metadata

pytestmark = pytest.mark.video

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_video_folder(tmp_path_factory.mktemp("clips"), 3, frames=12, step=4)


def test_int8_export_without_calibration_warns_and_validates(tmp_path):
    out = tmp_path / "q.onnx"
    result = _invoke(
        "export", "demo-random", "-o", out, "--precision", "int8", "--report", tmp_path / "r.json"
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "no calibration clips given" in text
    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert read_metadata(graph)["precision"] == "int8"
    assert merge_island_violations(graph) == []
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["precision"] == "int8"
    assert report["quantization"]["calibration"]["source"] == "random"
    assert report["quantization"]["settings"]["random_clips"] >= 1
    assert 0.9 <= report["merge_decisions"]["agreement"] <= 1.0
    assert report["passed"] is True


def test_int8_export_calibrated_on_video_clips(tmp_path, videos):
    out = tmp_path / "q.onnx"
    result = _invoke("export", "demo-random", "-o", out, "--precision", "int8", "--calib", videos,
                     "--inputs", videos, "--report", tmp_path / "r.json")  # fmt: skip
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "no calibration clips given" not in text
    calibration = json.loads((tmp_path / "r.json").read_text())["quantization"]["calibration"]
    assert calibration["source"] != "random" and calibration["count"] == 3
    settings = json.loads((tmp_path / "r.json").read_text())["quantization"]["settings"]
    assert "random_clips" not in settings and "seed" not in settings
    assert "3 clips from" in json.loads((tmp_path / "r.json").read_text())["inputs"]


def test_int8_engine_without_tensorrt_fails_before_any_work(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = _invoke("export", "demo-random", "-o", tmp_path / "e.plan", "--precision", "int8")
    assert result.exit_code == 2
    assert "TensorRT is not installed" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []
