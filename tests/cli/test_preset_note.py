"""A preset used at another frame count than it was published for says so everywhere the schedule
is shown: the console, the JSON and the Markdown report."""

from __future__ import annotations

import json


def test_preset_at_other_frames_is_noted_in_every_rendering(cli, tmp_path):
    report = tmp_path / "s.json"
    result = cli(
        "schedule", "--arch", "umt-b16", "--frames", "8", "--schedule", "msrvtt", "--report", report
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "published for 12 frames; at 8 frames" in text
    assert "published for 12 frames" in json.loads(report.read_text())["schedule"]["notes"][0]
    assert (
        "- note: preset 'msrvtt' was published for 12 frames"
        in report.with_suffix(".md").read_text()
    )
    as_json = json.loads(
        cli(
            "schedule", "--arch", "umt-b16", "--frames", "8", "--schedule", "msrvtt", "--json"
        ).output
    )
    assert as_json["notes"] and "published for 12 frames" in as_json["notes"][0]


def test_preset_at_its_own_frames_has_no_note(cli):
    result = cli(
        "schedule", "--arch", "umt-b16", "--frames", "12", "--schedule", "msrvtt", "--json"
    )
    assert "notes" not in json.loads(result.output)


def test_tune_console_names_skipped_presets_and_the_frame_note(monkeypatch):
    # A UMT-B16 at 8 frames is too large to tune in a test: the console step alone, on a report.
    from vidtldr_deploy.cli.commands import tune

    shown: list[str] = []
    monkeypatch.setattr(tune, "info", shown.append)
    data = {"frames": 8, "presets": [{"name": "msrvtt"}, {"name": "anet~"}],
            "presets_skipped": {"didemo": "r clamped to half the tokens at layer(s) [1]"}}  # fmt: skip
    tune._show_presets(data, "umt-b16")
    assert shown[0] == "preset didemo skipped: r clamped to half the tokens at layer(s) [1]"
    assert "published for 12 frames; at 8 frames" in shown[1] and "msrvtt, anet" in shown[1]
    shown.clear()
    tune._show_presets({**data, "frames": 12, "presets_skipped": {}}, "umt-b16")
    assert shown == []
