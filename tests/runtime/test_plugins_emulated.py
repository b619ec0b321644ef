"""The TensorRT plugins' own code (plugins/src) run on the CPU, through the CUDA emulation of the kernels.

Needs TensorRT's headers only (not libnvinfer, not a GPU): tests/cuda_emulator/plugin_harness.cpp
checks the creators, attribute parsing, serialisation round trips, clone and attachToContext,
type and shape checks, errors reported through an IErrorRecorder, and enqueue of both ops, also
configured for a dynamic batch (batch -1 over a 1..B profile) and run at batch 1. Without the
headers, a reading of the sources checks the same batch-generic shapes.
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


def _body(source: str, method: str) -> str:
    """The body of `Class::method(...)` in a plugin source, braces matched."""
    start = source.index("{", source.index(f"::{method}("))
    depth = 0
    for i, char in enumerate(source[start:], start):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return source[start : i + 1]
    raise AssertionError(f"unbalanced braces in {method}")


@pytest.mark.parametrize("plugin", ["saliency", "merge"])
def test_plugin_shapes_are_batch_generic(plugin) -> None:
    """What a dynamic-batch engine (export --max-batch) needs of each plugin, read from its
    source (runs without TensorRT's headers; the harness above runs it when they are there):
    every output's batch is the input's batch expression, the workspace is sized for the
    profile's max, and enqueue takes the batch of each call from its input desc."""
    import re

    source = (kernel_emulation.ROOT / "plugins" / "src" / f"{plugin}_plugin.cpp").read_text()
    shapes = _body(source, "getOutputShapes")
    outputs = set(re.findall(r"outputs\[(\d)\]\.nbDims\s*=", shapes))
    batch = dict(re.findall(r"outputs\[(\d)\]\.d\[0\]\s*=\s*([^;]+);", shapes))
    assert outputs and set(batch) == outputs, shapes
    assert set(batch.values()) == {"inputs[0].d[0]"}, batch  # never a build-time constant
    workspace = _body(source, "getWorkspaceSize")
    assert re.search(r"Dims const& (\w+) = inputs\[0\]\.max;", workspace), workspace
    enqueue = _body(source, "enqueue")
    dims = re.search(r"Dims const& (\w+) = inputDesc\[0\]\.dims;", enqueue)
    assert dims, enqueue
    assert f"static_cast<int>({dims.group(1)}.d[0])" in enqueue, enqueue
