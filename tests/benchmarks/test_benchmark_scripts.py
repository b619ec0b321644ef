"""Every script under benchmarks/ runs: a smoke run each (tiny model, one iteration, its JSON
parsed); the GPU-only ones import and refuse cleanly (exit 2, a message) without a GPU; and
gpu_checks.sh DRY_RUN=1 imports every Python module its steps run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

CHECKOUT = Path(__file__).resolve().parents[2]
BENCH = CHECKOUT / "benchmarks"
GPU_ONLY = ("bench_kernels", "bench_merge_share", "bench_torch_gpu")


def _run(args: list, timeout: int = 240, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(CHECKOUT), **env}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=environ,
        cwd=CHECKOUT,
    )  # fmt: skip


def test_every_script_has_a_smoke_run_here():
    scripts = {p.stem for p in BENCH.glob("*.py")} - {"_common", "dry_imports"}
    assert scripts == set(SMOKE) | set(GPU_ONLY)


# script -> (arguments, where it writes its JSON); {json} is the test's file.
SMOKE = {
    "flops_table": (["--arch", "umt-b16", "--json", "{json}"], "rows"),
    "bench_ort_cpu": (["--smoke", "--no-layers", "--json", "{json}"], "profile"),
    "bench_int8": (["--smoke", "--json", "{json}"], "int8"),
    "bench_tune": (["--smoke", "-o", "{json}"], "tune"),
    "bench_triton": (["--smoke", "--json", "{json}"], "triton"),
    "bench_openvino": (["--smoke", "--json", "{json}"], "openvino"),
}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_smoke_run_writes_its_json(script, tmp_path):
    args, kind = SMOKE[script]
    out = tmp_path / "out.json"
    if script == "bench_triton":
        sys.path.insert(0, str(CHECKOUT / "tests" / "serve"))
        import real_triton

        if real_triton.missing():
            if os.environ.get("CI"):
                pytest.fail(real_triton.missing())
            pytest.skip(real_triton.missing())
    r = _run([sys.executable, BENCH / f"{script}.py", *[a.format(json=out) for a in args]])
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    if kind == "rows":
        assert data and {"preset", "merged_gflops", "speedup"} <= set(data[0])
    elif kind == "profile":
        assert data["speedup"] > 0 and data["benchmark"]["name"] == "bench_ort_cpu"
    elif kind == "int8":
        assert data["arch"] == "umt-tiny" and 0 < data["pooled_cosine_worst"] <= 1 + 1e-6
    elif kind == "openvino":
        assert {"ort fp32 unmerged", "ov bf16 merged", "ov int8 merged"} <= set(data["latency"])
        assert data["accuracy"]["f32"]["pooled_cosine_worst"] > 0.9999
        assert data["accuracy"]["int8 Q/DQ"]["agreement"] is not None
    elif kind == "tune":
        assert data["args"]["arch"] == "umt-tiny" and data["tune"]
    else:
        assert data["rows"] and all(row["p99_ms"] >= row["p50_ms"] > 0 for row in data["rows"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal is checked where there is no GPU")
@pytest.mark.parametrize("script", GPU_ONLY)
def test_gpu_scripts_import_and_refuse_without_a_gpu(script, tmp_path):
    r = _run([sys.executable, BENCH / f"{script}.py", "--json", tmp_path / "out.json"])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "GPU" in r.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("stage", ["quick", "kernels", "inspect", "models"])
def test_gpu_checks_dry_run_imports_every_step(stage, tmp_path):
    r = _run(["bash", BENCH / "gpu_checks.sh", stage], DRY_RUN="1", OUT=str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    steps = r.stdout.count("\n== ")
    assert steps >= 2 and r.stdout.count("imports ok") >= steps - 1


def test_dry_imports_reports_a_script_that_fails_on_import(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("from vidtldr_deploy.core.schedule import NOT_THERE\n")
    r = _run([sys.executable, BENCH / "dry_imports.py", "python3", broken, "--json", "x"])
    assert r.returncode == 1 and "NOT_THERE" in r.stderr
