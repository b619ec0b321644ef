"""Peak resident memory of one `vidtldr` command, run in a fresh process, on tiny demo clips."""

from __future__ import annotations

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


def demo_clips(path, count: int) -> str:
    """`count` random demo-sized clips, one .npz member each (an .npz streams member by member)."""
    rng = np.random.default_rng(count)
    clips = {f"clip_{i:03d}": rng.standard_normal((3, 4, 32, 32)).astype(np.float32)
             for i in range(count)}  # fmt: skip
    np.savez(path, **clips)
    return str(path)


def peak_mib(*args: str) -> float:
    """Run `vidtldr ARGS` (which must succeed) and return its peak resident size in MiB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.split("PEAK_KIB")[-1]) / 1024
