"""Clips stream through evaluate a batch at a time: peak memory does not grow with their number.
Each run is a fresh process (its peak resident size is the measure), on tiny demo clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

# Runs `vidtldr ARGS` and prints the process's peak resident size in KiB.
PEAK = """
import resource, sys
from vidtldr_deploy.cli.main import app
try:
    app(args=sys.argv[1:], prog_name="vidtldr")
except SystemExit as exit:
    if exit.code:
        raise
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _clips(path, count: int) -> str:
    rng = np.random.default_rng(count)
    clips = {f"clip_{i:03d}": rng.standard_normal((3, 4, 32, 32)).astype(np.float32)
             for i in range(count)}  # fmt: skip
    np.savez(path, **clips)
    return str(path)


def _peak_mib(*args: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.split("PEAK_KIB")[-1]) / 1024


def test_evaluate_peak_memory_does_not_grow_with_the_clips(tmp_path):
    # Before streaming, all clips ran as one batch: 351 -> 444 MiB from 10 to 200 of these clips.
    few, many = _clips(tmp_path / "few.npz", 10), _clips(tmp_path / "many.npz", 200)
    args = ("evaluate", "demo-random", "-s", "0.25x2", "--clip-batch", "16", "--report")
    peak_few = _peak_mib(*args, str(tmp_path / "few.json"), "--clips", few)
    peak_many = _peak_mib(*args, str(tmp_path / "many.json"), "--clips", many)
    assert peak_many - peak_few < 25, (peak_few, peak_many)
    report = json.loads((tmp_path / "many.json").read_text())
    assert report["clips"]["count"] == 200 and len(report["schedules"][0]["per_clip"]) == 200
