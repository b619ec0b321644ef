"""Every command that takes clips takes the same clip options, and every file a command writes
goes through one check (writable, no two outputs the same file, no output over an input) before
any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.videos import flat_output
from vidtldr_deploy.errors import EXIT_BAD_INPUT


def _refused(result, *needles: str) -> str:
    text = flat_output(result)
    assert result.exit_code == EXIT_BAD_INPUT, text
    assert "Traceback" not in text and "internal error" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


@pytest.fixture
def clips(tmp_path):
    """A folder-free clip source the demo takes: two good clips, and one file that is no array."""
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).standard_normal((2, 3, 4, 32, 32)).astype(np.float32))
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array at all")
    return good, bad


def _only(folder, *names):
    """Nothing was written but the clips the test made (and `names`)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted({"good.npy", "bad.npy", *names})


def test_tune_report_markdown_and_write_config_collide(cli, clips, tmp_path):
    good, _ = clips
    result = cli("tune", "demo-random", "--clips", good, "--target-flops", "0.6",
                 "--report", tmp_path / "r.json", "--write-config", tmp_path / "r.md")  # fmt: skip
    _refused(result, "--write-config", "r.md", "is also --report's Markdown")
    _only(tmp_path)


def test_evaluate_report_markdown_and_plot_collide(cli, clips, tmp_path):
    good, _ = clips
    result = cli("evaluate", "demo-random", "--clips", good, "--report", tmp_path / "e.json",
                 "--plot", tmp_path / "e.md")  # fmt: skip
    _refused(result, "--plot", "e.md", "is also --report's Markdown")
    _only(tmp_path)


def test_an_output_over_a_clip_file_is_refused(cli, clips, tmp_path):
    good, _ = clips
    result = cli("evaluate", "demo-random", "--clips", good, "-s", "0.25x2", "--plot", good)
    _refused(result, "--plot", "is also --clips")
    schedule = cli("schedule", "--arch", "umt-b16", "-s", "16x12", "--report", tmp_path / "s.json")
    assert schedule.exit_code == 0, flat_output(schedule)
    assert (tmp_path / "s.json").is_file() and (tmp_path / "s.md").is_file()


def test_profile_report_and_plot_collide_through_the_markdown(cli, tmp_path):
    result = cli("profile", "demo-random", "-n", "1", "--warmup", "0", "--report", tmp_path / "p.json",
                 "--plot", tmp_path / "p.md")  # fmt: skip
    _refused(result, "--plot", "is also --report's Markdown")
    assert list(tmp_path.iterdir()) == []


def test_export_takes_skip_bad_and_the_other_clip_options(cli, clips, tmp_path):
    good, bad = clips
    out = tmp_path / "y.onnx"
    stopped = cli("export", "demo-random", "-o", out, "--inputs", good, "--inputs", bad)
    _refused(stopped, "bad.npy")
    assert not out.exists()
    report = tmp_path / "y.json"
    result = cli("export", "demo-random", "-o", out, "--inputs", bad, "--inputs", good, "--skip-bad",
                 "--max-clips", "1", "--report", report)  # fmt: skip
    assert result.exit_code == 0, flat_output(result)
    inputs = json.loads(report.read_text())["inputs"]
    assert "1 clip from 2 paths" in inputs and "1 skipped" in inputs


def test_validate_takes_skip_bad(cli, clips, demo_graphs, tmp_path):
    good, bad = clips
    report = tmp_path / "v.json"
    result = cli("validate", demo_graphs["onnx"], "--inputs", good, "--inputs", bad,
                 "--skip-bad", "--report", report)  # fmt: skip
    assert result.exit_code == 0, flat_output(result)
    data = json.loads(report.read_text())
    assert any("bad.npy" in w for w in data["warnings"]) and "2 clips" in data["inputs"]


def test_clip_options_without_clips_are_refused(cli, tmp_path):
    _refused(cli("export", "demo-random", "-o", tmp_path / "m.onnx", "--skip-bad"), "--inputs")
    _refused(cli("evaluate", "demo-random", "--clips", tmp_path, "--max-clips", "0"), "--max-clips")


def test_evaluate_says_when_recall_at_k_is_trivial(cli, clips, tmp_path):
    good, _ = clips
    result = cli("evaluate", "demo-random", "--clips", good, "-s", "0.25x2")
    assert result.exit_code == 0, flat_output(result)
    assert "R@1 and R@5 over 2 clips say little" in flat_output(result)


def test_tune_latency_model_uses_the_threads_given_and_reports_its_spread(cli, clips, tmp_path):
    good, _ = clips
    report = tmp_path / "t.json"
    result = cli("tune", "demo-random", "--clips", good, "--target-latency-ms", "1000", "--threads", "1",
                 "--beam-width", "1", "--report", report)  # fmt: skip
    assert result.exit_code == 0, flat_output(result)
    model = json.loads(report.read_text())["cost_model"]
    assert model["threads"] == 1 and model["spread"] >= 0
    assert "latency model: blocks timed on 1 thread(s)" in flat_output(result)
    _refused(cli("tune", "demo-random", "--clips", good, "--target-latency-ms", "1", "--threads", "0"),
             "--threads")  # fmt: skip
