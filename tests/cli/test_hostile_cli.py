"""Hostile input to `evaluate` and `tune` from the command line: interrupts (real SIGTERM), clips
that are not regular files, decode limits from flags, strict labels, non-finite budgets, strict
JSON reports, and reports written as a pair or not at all."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.videos import flat_output, write_video_folder
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.evaluate import labels_for_clips, load_labels, match_labels

pytestmark = pytest.mark.video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return write_video_folder(tmp_path_factory.mktemp("videos"), 2)


# --- tune interrupted --------------------------------------------------------------------------


def _interrupt_evaluate(monkeypatch, when):
    """Ctrl-C inside _Search.evaluate at the first call where when(search) holds."""
    from vidtldr_deploy.tune import search

    original = search._Search.evaluate

    def evaluate(self, *args, **kwargs):
        if when(self):
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(search._Search, "evaluate", evaluate)


def test_tune_interrupted_in_the_first_candidate_is_130_and_writes_nothing(
    cli, videos, tmp_path, monkeypatch
):
    _interrupt_evaluate(monkeypatch, lambda search: True)
    config, report = tmp_path / "c.toml", tmp_path / "r.json"
    r = cli("tune", "demo", "--clips", videos, "--target-flops", "0.6",
            "--write-config", config, "--report", report)  # fmt: skip
    assert r.exit_code == 130, flat_output(r)
    assert sorted(os.listdir(tmp_path)) == []


def test_tune_interrupted_before_any_candidate_meets_is_130_and_writes_nothing(
    cli, videos, tmp_path, monkeypatch
):
    _interrupt_evaluate(monkeypatch, lambda search: len(search.order) >= 1 and search.best is None)
    config = tmp_path / "c.toml"
    r = cli("tune", "demo", "--clips", videos, "--target-flops", "0.6", "--write-config", config)
    assert r.exit_code == 130, flat_output(r)
    assert not config.exists()


_SIGTERM_AFTER_A_MEETING_CANDIDATE = """
import os, signal, sys
from vidtldr_deploy.cli.main import _run
from vidtldr_deploy.tune import search

original = search._Search.evaluate

def evaluate(self, *args, **kwargs):
    if self.best is not None:
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal, through the CLI's own handler
    return original(self, *args, **kwargs)

search._Search.evaluate = evaluate
_run(sys.argv[1:], "vidtldr")
"""


def test_tune_sigterm_writes_the_best_meeting_schedule_marked_interrupted(videos, tmp_path):
    config, report = tmp_path / "c.toml", tmp_path / "r.json"
    args = ["tune", "demo", "--clips", str(videos), "--target-flops", "0.6",
            "--write-config", str(config), "--report", str(report)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_A_MEETING_CANDIDATE, *args],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    data = json.loads(report.read_text())
    assert data["interrupted"] and data["meets_budget"] and data["flops"]["ratio"] <= 0.6
    from vidtldr_deploy.export.config import load_export_config

    assert load_export_config(config).schedule == data["schedule"] != "none"


# --- budgets and strict JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value", [("--target-latency-ms", "inf"), ("--target-flops", "nan"),
                    ("--target-speedup", "inf")],
)  # fmt: skip
def test_non_finite_budgets_are_refused(cli, videos, tmp_path, flag, value):
    r = cli("tune", "demo", "--clips", videos, flag, value, "--report", tmp_path / "r.json")
    assert r.exit_code == 2 and "must be a finite number" in flat_output(r), flat_output(r)
    assert not (tmp_path / "r.json").exists()


def test_reports_are_strict_json_with_a_note_for_non_finite_values():
    import numpy as np

    from vidtldr_deploy.report.io import json_text

    data = {"a": math.inf, "b": [1.0, np.float32("nan")], "c": {"d": -math.inf}, "n": np.int64(3)}
    text = json_text(data)
    assert "Infinity" not in text and "NaN" not in text
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded["a"] is None and loaded["b"] == [1.0, None] and loaded["c"]["d"] is None
    assert loaded["n"] == 3 and loaded["non_finite"]["fields"] == ["a", "b[1]", "c.d"]


def test_a_full_disk_leaves_neither_half_of_a_report(cli, videos, tmp_path, monkeypatch):
    """The Markdown cannot be written: no r.json without r.md, and the run says so (exit 2)."""
    report = tmp_path / "r.json"
    original = Path.write_text

    def write_text(self, text, *a, **k):
        if self.name.endswith(".md"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    r = cli("evaluate", "demo", "--clips", videos, "-s", "0.25x2", "--report", report)
    assert r.exit_code == 2 and "No space left" in flat_output(r), flat_output(r)
    assert sorted(os.listdir(tmp_path)) == []


# --- clips on the command line -----------------------------------------------------------------


def test_clips_that_are_not_regular_files_are_refused_before_the_model_loads(cli, videos, tmp_path):
    os.mkfifo(tmp_path / "f.mp4")
    (tmp_path / "z.mp4").symlink_to("/dev/zero")
    for bad, kind in ((tmp_path / "f.mp4", "FIFO"), (tmp_path / "z.mp4", "character device")):
        r = cli("evaluate", "demo", "--clips", bad, "--clips", videos / "clip0.mp4", "--skip-bad")
        assert r.exit_code == 2 and kind in flat_output(r) and "loading demo" not in r.output


def test_decode_limit_flags(cli, videos):
    r = cli("evaluate", "demo", "--clips", videos, "-s", "0.25x2", "--max-frame-pixels", "1000")
    assert (
        r.exit_code == 2
        and "--max-frame-pixels" in flat_output(r)
        and "clip0.mp4" in flat_output(r)
    )
    r = cli("evaluate", "demo", "--clips", videos, "-s", "0.25x2", "--max-clip-mib", "-1")
    assert r.exit_code == 2 and "--max-clip-mib" in flat_output(r)


def test_decode_limit_flags_on_export_and_validate(cli, videos, tmp_path):
    """The commands that fall back to random clips take the same limit flags as evaluate."""
    out = tmp_path / "m.onnx"
    r = cli("export", "demo-random", "-o", out, "--inputs", videos, "--max-frame-pixels", "1000")
    assert r.exit_code == 2 and "--max-frame-pixels" in flat_output(r) and not out.exists()
    assert "clip0.mp4" in flat_output(r) and "No such option" not in flat_output(r)
    r = cli("export", "demo-random", "-o", out, "--max-clip-mib", "1")  # no --inputs to limit
    assert r.exit_code == 2 and "--inputs" in flat_output(r) and not out.exists()
    r = cli("export", "demo-random", "-o", out, "--no-validate")
    assert r.exit_code == 0, r.output
    r = cli("validate", out, "--inputs", videos, "--max-clip-mib", "-1")
    assert (
        r.exit_code == 2
        and "--max-clip-mib" in flat_output(r)
        and "No such option" not in flat_output(r)
    )
    r = cli("validate", out, "--inputs", videos, "--max-frame-pixels", "1000")
    assert (
        r.exit_code == 2
        and "--max-frame-pixels" in flat_output(r)
        and "clip0.mp4" in flat_output(r)
    )


# --- labels ------------------------------------------------------------------------------------


def test_labels_bom_latin1_and_duplicates(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufeffpath,label\na.mp4,3\na.mp4,3\n".encode())
    assert load_labels(path) == {"a.mp4": 3}  # BOM stripped, the header seen; agreeing repeat
    path.write_bytes("café.mp4,3\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_labels(path)
    path.write_text("a.mp4,3\nb.mp4,1\na.mp4,4\n")
    with pytest.raises(InputError, match="line 1 labels it 3"):
        load_labels(path)


def test_labels_match_by_relative_path_and_unambiguous_names():
    names = ["clips/run/x.mp4", "clips/walk/x.mp4", "clips/walk/y.mp4"]
    labels = {"run/x.mp4": 1, "walk/x.mp4": 2, "y.mp4": 3}
    assert match_labels(names, labels, ["clips"]) == [1, 2, 3]
    # a bare "x.mp4" row could be either clip: it matches neither
    assert match_labels(names, {"x.mp4": 5}) == [None, None, None]


def test_labels_are_checked_against_the_model_and_the_clips():
    names = ["a.mp4", "b.mp4"]
    found, warnings = labels_for_clips(names, {"a.mp4": 2}, num_classes=3)
    assert found == {"a.mp4": 2} and "labels for 1 of 2 clips" in warnings[0]
    with pytest.raises(InputError, match="outside the model's 3 classes"):
        labels_for_clips(names, {"a.mp4": 3}, num_classes=3)
    with pytest.raises(InputError, match="matches any of the 2 clips"):
        labels_for_clips(names, {"c.mp4": 1}, num_classes=3)
    with pytest.raises(InputError, match="encoder"):
        labels_for_clips(names, {"a.mp4": 1}, num_classes=0)


def test_labels_for_an_encoder_are_refused_on_the_command_line(cli, videos, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("clip0.mp4,1\n")
    r = cli("evaluate", "demo-random", "--clips", videos, "-s", "0.25x2", "--labels", labels)
    assert r.exit_code == 2 and "encoder" in flat_output(r) and "decoding" not in flat_output(r)


def test_labels_file_that_is_not_a_regular_file_is_refused(cli, videos, tmp_path):
    os.mkfifo(tmp_path / "labels.csv")
    r = cli("evaluate", "demo", "--clips", videos, "--labels", tmp_path / "labels.csv")
    assert r.exit_code == 2 and "FIFO" in flat_output(r)
