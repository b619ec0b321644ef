"""A Hugging Face VideoMAE folder of a size no architecture registers: named by its family and
sizes (never as the registered name it loads under), and rebuilt by `validate` from the graph's
metadata alone, from another folder, without --checkpoint."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from vidtldr_deploy.export.config import load_export_config
from vidtldr_deploy.export.metadata import read_metadata


@pytest.fixture(scope="module")
def custom_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48,
        num_hidden_layers=3, num_attention_heads=3, intermediate_size=96,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.VideoMAEModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.1)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    folder = tmp_path_factory.mktemp("hf") / "my-videomae"
    model.save_pretrained(folder)
    return folder


def test_custom_size_is_named_by_its_sizes_and_validates_from_metadata(
    cli, custom_folder, tmp_path, monkeypatch
):
    graph, report = tmp_path / "g.onnx", tmp_path / "r.json"
    result = cli("export", custom_folder, "-o", graph, "-s", "0.25x2", "--report", report)
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    name = "videomae (48 wide, 3 layers, 3 heads, 32 px)"
    assert name in text
    meta = read_metadata(onnx.load(str(graph)))
    assert meta["model"] == name and meta["arch"].startswith("videomae")
    assert json.loads(report.read_text())["arch"] == name
    # from another folder, with nothing but the graph: the recorded folder rebuilds the model
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = tmp_path / "again.json"
    result = cli("validate", graph, "--report", again)
    assert result.exit_code == 0, " ".join(result.output.split())
    assert json.loads(again.read_text())["arch"] == name


def test_custom_size_is_named_by_its_sizes_in_evaluate_and_tune_reports(
    cli, custom_folder, tmp_path
):
    import numpy as np

    clips = tmp_path / "clips.npy"
    np.save(clips, np.random.default_rng(0).standard_normal((3, 3, 4, 32, 32)).astype(np.float32))
    name = "videomae (48 wide, 3 layers, 3 heads, 32 px)"
    config = tmp_path / "tuned.toml"
    tune = ("tune", "--target-flops", "0.7", "--write-config", config)
    for args in (("evaluate", "-s", "0.25x2"), tune):
        report = tmp_path / f"{args[0]}.json"
        result = cli(args[0], custom_folder, "--clips", clips, *args[1:], "--report", report)
        assert result.exit_code == 0, " ".join(result.output.split())
        assert json.loads(report.read_text())["arch"] == name
        assert name in report.with_suffix(".md").read_text()
    # the config still names what rebuilds the model: the registered architecture it loads under
    assert load_export_config(config).arch.startswith("videomae")


def test_evaluate_labels_show_accuracy_and_small_kl_in_scientific_notation(cli, tmp_path):
    import numpy as np

    transformers = pytest.importorskip("transformers")
    config = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48,
        num_hidden_layers=3, num_attention_heads=3, intermediate_size=96, num_labels=5,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(tmp_path / "cls")
    clips = tmp_path / "cl.npy"
    np.save(clips, np.random.default_rng(0).standard_normal((6, 3, 4, 32, 32)).astype(np.float32))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"cl.npy[{i}],{i % 5}\n" for i in range(6)))
    report = tmp_path / "e.json"
    result = cli("evaluate", tmp_path / "cls", "--clips", clips, "-s", "0.25x2", "-s", "none",
                 "--labels", labels, "--report", report)  # fmt: skip
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    merged = json.loads(report.read_text())["schedules"][0]["metrics"]
    assert "accuracy" in text and f"{merged['accuracy']:.3f}" in text
    assert f"accuracy of the unmerged model: {merged['baseline_accuracy']:.3f}" in text
    assert 0 < merged["kl_mean"] < 1e-2 and f"{merged['kl_mean']:.2e}" in text
