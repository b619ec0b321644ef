"""Shared test configuration: markers (registered once, checked strictly), the environment skips
that go with them, and fixtures several layers use (the demo model, its exported graphs, the CLI).

Tests are grouped by the layer they test (tests/core, models, export, runtime, validate, profile,
pipelines, cli, clips, serve, quantize, evaluate, tune, benchmarks, arch); support code every layer may import lives in
tests/support (the paper's algorithm as an oracle, the CUDA emulation, a fake TensorRT, videos)."""

from __future__ import annotations

import importlib.util
import os

import pytest

# Rich wraps tables to the terminal; a wide virtual terminal keeps names whole in captured output.
os.environ["COLUMNS"] = "200"

MARKERS = {
    "gpu": "needs a CUDA GPU (skipped without one; the CPU emulation covers the logic)",
    "tensorrt": "needs TensorRT installed (skipped without it; a fake covers the build logic)",
    "slow": "takes more than a few seconds on 2 CPU cores (full-size models)",
    "video": "encodes or decodes real video files with PyAV",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {}
    if not _has_cuda():
        skips["gpu"] = pytest.mark.skip(
            reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
        )
    if importlib.util.find_spec("tensorrt") is None:
        skips["tensorrt"] = pytest.mark.skip(reason="TensorRT is not installed")
    for item in items:
        for name, mark in skips.items():
            if name in item.keywords:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def demo_source():
    """The built-in random-weight tiny model (demo-random), loaded once per session: read-only."""
    from vidtldr_deploy.models.source import load_source

    return load_source("demo-random")


@pytest.fixture(scope="session")
def demo_graphs(tmp_path_factory, demo_source):
    """The demo exported once per merge impl with schedule 0.25x2: {"onnx": path, "plugin": path}."""
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("demo-graphs")
    schedule = demo_source.schedule("0.25x2")
    graphs = {}
    for impl in ("onnx", "plugin"):
        spec = ExportSpec(
            demo_source.arch, demo_source.frames, 1, schedule, impl, checkpoint=demo_source.label
        )
        graphs[impl] = folder / f"demo-{impl}.onnx"
        export_onnx(demo_source.model, spec, graphs[impl])
    return graphs


@pytest.fixture
def cli():
    """Invoke `vidtldr ARGS...` in-process; arguments may be paths."""
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.main import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def dynamic_graphs(tmp_path_factory, demo_source):
    """The demo (schedule 0.25x2) exported with a dynamic batch 1..4 (--max-batch 4), per impl."""
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx

    loaded = demo_source
    folder = tmp_path_factory.mktemp("dynamic_graphs")
    paths = {}
    for impl in ("onnx", "plugin"):
        spec = ExportSpec(loaded.arch, loaded.frames, 4, loaded.schedule("0.25x2"), impl,
                          checkpoint=loaded.label, max_batch=4)  # fmt: skip
        paths[impl] = folder / f"demo_dyn_{impl}.onnx"
        export_onnx(loaded.model, spec, paths[impl])
    return paths
