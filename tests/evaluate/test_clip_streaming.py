"""Clips stream through evaluate a batch at a time: peak memory does not grow with their number.
Each run is a fresh process (its peak resident size is the measure), on tiny demo clips."""

from __future__ import annotations

import json

from support.peak_memory import demo_clips, peak_mib


def test_evaluate_peak_memory_does_not_grow_with_the_clips(tmp_path):
    # Before streaming, all clips ran as one batch: 351 -> 444 MiB from 10 to 200 of these clips.
    few, many = demo_clips(tmp_path / "few.npz", 10), demo_clips(tmp_path / "many.npz", 200)
    args = ("evaluate", "demo-random", "-s", "0.25x2", "--clip-batch", "16", "--report")
    peak_few = peak_mib(*args, str(tmp_path / "few.json"), "--clips", few)
    peak_many = peak_mib(*args, str(tmp_path / "many.json"), "--clips", many)
    assert peak_many - peak_few < 25, (peak_few, peak_many)
    report = json.loads((tmp_path / "many.json").read_text())
    assert report["clips"]["count"] == 200 and len(report["schedules"][0]["per_clip"]) == 200
