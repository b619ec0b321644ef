"""The TensorRT plugins' own code (plugins/src) run on the CPU, through the CUDA emulation of the kernels.

Needs TensorRT's headers only (not libnvinfer, not a GPU): tests/cuda_emulator/plugin_harness.cpp
checks the creators, attribute parsing, serialisation round trips, clone and attachToContext,
type and shape checks, errors reported through an IErrorRecorder, and enqueue of both ops.
"""

from __future__ import annotations

import subprocess

import pytest

from support import kernel_emulation


def test_plugins_run_through_the_emulated_kernels(tmp_path) -> None:
    include = kernel_emulation.find_tensorrt_include()
    if include is None:
        pytest.skip(
            "needs TensorRT's headers (NvInfer.h under $TENSORRT_ROOT/include or /usr/include)"
        )
    compiler = kernel_emulation.host_compiler()
    if compiler is None:
        pytest.skip("needs a host C++ compiler with _Float16 (g++ >= 12 or clang++ >= 15)")
    program = kernel_emulation.build_plugin_harness(tmp_path, compiler, include)
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"plugin harness failed:\n{result.stdout}\n{result.stderr}"
    assert "0 failures" in result.stdout
