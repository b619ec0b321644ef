"""Shared fixtures of the serving tests: tiny exported graphs (both merge impls), fake engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vidtldr_deploy.backends import engine_sidecar as sc

pytest.importorskip("tritonclient.grpc.model_config_pb2")

BATCH = 2


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """demo (umt-tiny) exported at batch 2 with --merge-impl onnx and plugin."""
    from vidtldr_deploy.core.schedule import resolve_schedule
    from vidtldr_deploy.export.onnx_export import ExportSpec, export_onnx
    from vidtldr_deploy.models.source import load_source

    loaded = load_source("demo")
    model = loaded.model
    schedule = resolve_schedule("0.25x2", model.cfg.depth, model.num_tokens, loaded.arch)
    folder = tmp_path_factory.mktemp("graphs")
    paths = {}
    for impl in ("onnx", "plugin"):
        spec = ExportSpec(
            loaded.arch, loaded.frames, BATCH, schedule, impl, checkpoint_sha256="cd" * 32
        )
        paths[impl] = folder / f"demo_{impl}.onnx"
        export_onnx(model, spec, paths[impl])
    return paths


def write_fake_plan(folder: Path, stem: str = "engine", plugin: Path | None = None) -> Path:
    """An engine file that only its sidecar describes (no TensorRT here), written by the sidecar
    module's own writer so the engine hash is filled in as a real build does."""
    sidecar = sc.make_sidecar(
        tensorrt_version="10.7.0",
        cuda_version="12.6",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        inputs={"video": sc.io_spec((BATCH, 3, 4, 32, 32), "float32")},
        outputs={
            "tokens": sc.io_spec((BATCH, 36, 64), "float32"),
            "pooled": sc.io_spec((BATCH, 64), "float32"),
        },
        schedule={"spec": "0.25x2", "layers": []},
        onnx_sha256="ee" * 32,
        plugin_library=None if plugin is None else plugin,
        plugin_library_sha256=None if plugin is None else sc.sha256_file(plugin),
        arch="umt-tiny",
        merge_impl="plugin" if plugin else "onnx",
        plugin_layers=4 if plugin else 0,
    )
    path = folder / f"{stem}.plan"
    sc.write_engine_and_sidecar(path, b"not really an engine " + stem.encode(), sidecar)
    return path


@pytest.fixture
def fake_plugin(tmp_path) -> Path:
    lib = tmp_path / "build" / "libvidtldr_plugins.so"
    lib.parent.mkdir()
    lib.write_bytes(b"\x7fELF fake plugin library")
    return lib


@pytest.fixture
def no_default_plugins(monkeypatch, tmp_path):
    """The default plugin folder of this checkout may hold a real build: point the lookup at an
    empty folder so 'no library' is what the test sees."""
    empty = tmp_path / "empty_plugins"
    empty.mkdir()
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(empty))
    return empty


@pytest.fixture(scope="session")
def cli():
    from vidtldr_deploy.cli.commands.triton import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
