"""The command line as a user meets it: the demo flow, validation, and every kind of bad input
ending in one clear message, a non-zero exit and no half-written output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidtldr_deploy.cli.main import app
from vidtldr_deploy.errors import EXIT_BAD_INPUT as EXIT_ERROR
from vidtldr_deploy.errors import EXIT_CHECK_FAILED as EXIT_FAILED
from vidtldr_deploy.models.registry import get_architecture

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-random")
    result = invoke(
        "export", "demo-random", "-o", out / "demo.onnx", "--report", out / "report.json"
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_demo_exports_and_validates(demo_export):
    out, result = demo_export
    assert "seeded random weights" in result.output
    assert "validation PASS" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and report["runtime"] == "onnxruntime"
    assert [r["r"] for r in report["schedule"]["layers"]] == [16, 12, 0, 0]
    pooled = next(o for o in report["outputs"] if o["name"] == "pooled")
    assert pooled["metrics"]["cosine"] > 0.9999
    assert report["merge_cost"][0]["name"] == "pooled"  # tokens differ in count, pooled compares
    assert (out / "report.md").read_text().startswith("# vidtldr validation report")
    assert sorted(p.name for p in out.iterdir()) == ["demo.onnx", "report.json", "report.md"]


def test_validate_command_reads_graph_metadata(demo_export, tmp_path):
    out, _ = demo_export
    result = invoke("validate", out / "demo.onnx", "--report", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "v.json").read_text())["passed"] is True


def test_validate_fails_on_impossible_tolerance(demo_export):
    out, _ = demo_export
    result = invoke("validate", out / "demo.onnx", "--max-abs", "0", "--min-cosine", "1.1")
    assert result.exit_code == EXIT_FAILED
    assert "FAIL" in result.output


def test_validate_with_npz_inputs(demo_export, tmp_path):
    out, _ = demo_export
    clips = tmp_path / "clips.npz"
    np.savez(clips, a=np.random.rand(1, 3, 4, 32, 32).astype(np.float32))
    assert invoke("validate", out / "demo.onnx", "--inputs", clips).exit_code == 0
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3, 8, 32, 32), np.float32))
    result = invoke("validate", out / "demo.onnx", "--inputs", bad)
    assert result.exit_code == EXIT_ERROR and "the model takes (1, 3, 4, 32, 32)" in result.output


def test_schedule_json():
    result = invoke(
        "schedule", "--arch", "umt-b16", "--frames", "12", "--schedule", "msrvtt", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["r"] for row in data["layers"][:4]] == [600, 200, 100, 0]
    assert data["layers"][-1]["tokens_out"] == 1452
    assert 1.69 < data["flops"]["baseline"] / data["flops"]["merged"] < 1.71


def test_archs_lists_every_family():
    result = invoke("archs")
    assert result.exit_code == 0
    for name in ("umt-b16", "umt-l16", "videomae-b", "videomae-l", "umt-tiny", "videomae-tiny"):
        assert name in result.output


def _tiny_umt_checkpoint(path, arch="umt-tiny"):
    model = get_architecture(arch).build()
    torch.save(
        {"model": {f"vision_encoder.encoder.{k}": v for k, v in model.state_dict().items()}}, path
    )
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "missing.pt", "-o", "{tmp}/m.onnx", "--schedule", "4"], "does not exist"),
        (["export", "{tmp}/corrupt.pt", "-o", "{tmp}/m.onnx", "--schedule", "4"], "corrupt"),
        (["export", "{tmp}/pickled.pt", "-o", "{tmp}/m.onnx", "--schedule", "4"], "--unsafe-load"),
        (["export", "{tmp}/umt.pt", "--arch", "videomae-tiny", "-o", "{tmp}/m.onnx", "--schedule", "4"],
         "does not fit architecture videomae-tiny"),
        (["export", "{tmp}/umt.pt", "-o", "{tmp}/m.onnx", "--schedule", "1,2,3,4,5"], "has 5 layers but the model has 4"),
        (["export", "{tmp}/umt.pt", "-o", "{tmp}/m.onnx", "--schedule", "fast please"], "cannot parse schedule"),
        (["export", "{tmp}/umt.pt", "-o", "{tmp}/m.onnx"], "pass --schedule"),
        (["export", "demo-random", "--arch", "videomae-tiny", "--frames", "3", "-o", "{tmp}/m.onnx"], "tubelet size 2"),
        (["export", "demo-random", "--arch", "umt-b16", "-o", "{tmp}/m.onnx"], "tiny architectures only"),
        (["export", "demo-random", "-o", "{tmp}/nowhere/m.onnx"], "does not exist"),
        (["export", "demo-random", "-o", "{tmp}/m.txt"], "expected a .onnx or .plan"),
        (["export", "demo-random", "-o", "{tmp}/m.onnx", "--merge-impl", "scatter"], "--merge-impl must be one of"),
        (["export", "demo-random", "-o", "{tmp}/m.onnx", "--config", "{tmp}/bad.toml"], "unknown key(s) shedule"),
        (["validate", "{tmp}/corrupt.onnx"], "not a readable ONNX file"),
        (["schedule", "--arch", "umt-xxl"], "unknown architecture"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04not really a checkpoint")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pt")  # a whole module, not a state dict
    _tiny_umt_checkpoint(tmp_path / "umt.pt")
    (tmp_path / "bad.toml").write_text('shedule = "4"\n')
    before = set(tmp_path.iterdir())
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == EXIT_ERROR, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert set(tmp_path.iterdir()) == before  # nothing half-written left behind


def test_unsafe_load_reads_a_pickled_module(tmp_path):
    from vidtldr_deploy.models.checkpoint import read_checkpoint

    model = get_architecture("umt-tiny").build()
    torch.save(model, tmp_path / "whole.pt")
    ckpt = read_checkpoint(tmp_path / "whole.pt", unsafe_load=True)
    assert set(ckpt.state) == set(model.state_dict())


def test_checkpoint_architecture_is_inferred(tmp_path):
    from vidtldr_deploy.models.source import load_source

    loaded = load_source(str(_tiny_umt_checkpoint(tmp_path / "umt.pt")))
    assert loaded.arch == "umt-tiny"
    assert "inferred from the checkpoint" in loaded.description
    assert len(loaded.sha256) == 64
