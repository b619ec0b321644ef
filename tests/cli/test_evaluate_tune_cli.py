"""`vidtldr evaluate` and `vidtldr tune` from the command line, on the demo model and real (tiny)
video files made with PyAV."""

from __future__ import annotations

import json

import pytest

from support.videos import flat_output, write_garbage, write_video_folder
from vidtldr_deploy.export.config import load_export_config
from vidtldr_deploy.models.source import load_source

pytestmark = pytest.mark.video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_video_folder(tmp_path_factory.mktemp("videos"), 4)


def test_evaluate_none_has_no_drift_and_full_agreement(cli, videos, tmp_path):
    report = tmp_path / "ev.json"
    result = cli("evaluate", "demo-random", "--clips", videos, "-s", "none", "-s", "0.5x3", "--report", report,
                 "--plot", tmp_path / "ev.png")  # fmt: skip
    assert result.exit_code == 0, flat_output(result)
    data = json.loads(report.read_text())
    assert data["kind"] == "evaluate" and data["clips"]["count"] == 4
    rows = {r["schedule"]: r for r in data["schedules"]}
    none = rows["none"]["metrics"]
    assert none["cosine_mean"] == pytest.approx(1.0, abs=1e-6) and none[
        "rel_l2_mean"
    ] == pytest.approx(0, abs=1e-6)
    assert none["recall_at_1"] == 1.0 and rows["none"]["flops"]["ratio"] == 1.0
    merged = rows["0.5x3"]
    assert merged["flops"]["ratio"] < 1 and merged["metrics"]["cosine_mean"] < 1
    assert (tmp_path / "ev.png").stat().st_size > 0 and (tmp_path / "ev.md").is_file()


def test_evaluate_bad_clip_is_named_or_skipped(cli, videos, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.mp4").write_bytes((videos / "clip0.mp4").read_bytes())
    write_garbage(folder / "broken.mp4")
    result = cli("evaluate", "demo-random", "--clips", folder, "-s", "0.25x2")
    assert result.exit_code == 2 and "broken.mp4" in flat_output(result)
    report = tmp_path / "r.json"
    result = cli(
        "evaluate",
        "demo-random",
        "--clips",
        folder,
        "-s",
        "0.25x2",
        "--skip-bad",
        "--report",
        report,
    )
    assert result.exit_code == 0, flat_output(result)
    data = json.loads(report.read_text())
    assert data["clips"]["count"] == 1 and any("broken.mp4" in w for w in data["warnings"])


def test_evaluate_graph_target_matches_its_pytorch_schedule(cli, videos, tmp_path):
    graph = tmp_path / "g.onnx"
    assert cli("export", "demo-random", "-o", graph, "--no-validate", "-s", "0.25x2").exit_code == 0
    report_graph, report_torch = tmp_path / "g.json", tmp_path / "t.json"
    assert cli("evaluate", graph, "--clips", videos, "--report", report_graph).exit_code == 0
    assert (
        cli(
            "evaluate", "demo-random", "--clips", videos, "-s", "0.25x2", "--report", report_torch
        ).exit_code
        == 0
    )
    g = json.loads(report_graph.read_text())["schedules"][0]
    t = json.loads(report_torch.read_text())["schedules"][0]
    assert g["flops"]["ratio"] == pytest.approx(t["flops"]["ratio"])
    assert g["metrics"]["cosine_mean"] == pytest.approx(t["metrics"]["cosine_mean"], abs=2e-3)


def test_tune_meets_flops_budget_and_writes_a_config_that_exports_it(cli, videos, tmp_path):
    report, config = tmp_path / "tune.json", tmp_path / "tuned.toml"
    result = cli("tune", "demo-random", "--clips", videos, "--target-flops", "0.6", "--report", report,
                 "--write-config", config, "--plot", tmp_path / "pareto.png")  # fmt: skip
    assert result.exit_code == 0, flat_output(result)
    data = json.loads(report.read_text())
    assert data["meets_budget"] and data["flops"]["ratio"] <= 0.6
    assert data["candidates_evaluated"] >= 2 and data["pareto"]
    for key in (
        "schedule",
        "flops",
        "drift",
        "target",
        "pareto",
        "candidates_evaluated",
        "presets",
    ):
        assert key in data
    # never worse than any fixed candidate it tried that meets the budget
    fixed = [c for c in data["candidates"] if c["form"] != "beam" and c["meets_budget"]]
    assert all(data["drift"] <= c["drift"] + 1e-12 for c in fixed)
    loaded = load_export_config(config)
    assert loaded.schedule == data["schedule"] and loaded.arch == "umt-tiny"
    markdown = report.with_suffix(".md").read_text()
    assert markdown.count("**target**") == 1
    assert "merged FLOPs at most 0.6 of the unmerged model's" in markdown
    demo = load_source("demo-random")
    assert demo.schedule(loaded.schedule).rs == [row["r"] for row in data["layers"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target-flops", "0.5", "--target-speedup", "2"], "exactly one of"),
        ([], "exactly one of"),
        (["--target-flops", "1.5"], "--target-flops must be in (0, 1)"),
        (["--target-latency-ms", "5", "--runtime", "onnxruntime"], "use --runtime torch"),
    ],
)
def test_tune_bad_budgets_are_named_before_work(cli, videos, args, message):
    result = cli("tune", "demo-random", "--clips", videos, *args)
    assert result.exit_code == 2 and message in flat_output(result)
