"""One runner table (runtime/registry.py): every command's runners are constructed there, and a
runtime registered there is known to --runtime, to the target resolver and to profile's openers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.graphs import graph_with_metadata
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.runtime import registry
from vidtldr_deploy.runtime.devices import check_device
from vidtldr_deploy.target import resolve_target

PACKAGE = Path(__file__).resolve().parents[2] / "vidtldr_deploy"
RUNNER_CLASSES = {"TorchRunner": "runtime/pytorch.py", "OnnxRuntimeRunner": "runtime/onnxruntime.py",
                  "TensorRTRunner": "runtime/tensorrt/runner.py",
                  "OpenVinoRunner": "runtime/openvino.py"}  # fmt: skip


def test_runners_are_constructed_only_by_the_table():
    """No command, pipeline or profile constructs a runner class itself (its own module's helpers
    aside): the decision which class runs a runtime, with which arguments, is made once."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                home = RUNNER_CLASSES.get(node.func.id)
                if home is not None and path.relative_to(PACKAGE).as_posix() != home:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.id}")
    assert found == []


def test_a_registered_runtime_is_one_entry(monkeypatch, tmp_path):
    opened = []

    class Recorder:
        name = "recorder"

    def open_recorder(source, options):
        opened.append((Path(source), options.device, options.threads))
        return Recorder()

    entry = registry.RuntimeEntry((registry.GRAPH,), "cpu", open_recorder)
    monkeypatch.setitem(registry.RUNNERS, "recorder", entry)
    check_device("recorder", "cpu")  # --runtime knows it
    graph = graph_with_metadata(tmp_path)
    target = resolve_target(graph)
    runner = target.open_runner("recorder", registry.RunnerOptions(threads=2))
    assert isinstance(runner, Recorder) and opened == [(graph, "cpu", 2)]
    # a runtime that does not read graphs is refused for one, naming the default
    with pytest.raises(InputError, match="runs in onnxruntime, not tensorrt"):
        target.open_runner("tensorrt")
    with pytest.raises(InputError, match="--runtime must be one of"):
        registry.open_runner("nope", graph)


def test_defaults_by_kind():
    assert registry.default_runtime("engine") == "tensorrt"
    assert registry.default_runtime("onnx") == "onnxruntime"
    assert registry.default_runtime("checkpoint") == "torch"
    assert registry.choose_runtime("engine", None, None, "e.plan") == ("tensorrt", "cuda")
    assert registry.choose_runtime("onnx", None, "cuda", "g.onnx") == ("onnxruntime", "cuda")
