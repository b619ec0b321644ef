"""Shared fixtures of the serving tests: tiny exported graphs (both merge impls), fake engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from triton_helpers import BATCH
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """demo (umt-tiny) exported at batch 2 with --merge-impl onnx and plugin."""
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source

    loaded = load_source("demo")
    model = loaded.model
    schedule = loaded.schedule("0.25x2")
    folder = tmp_path_factory.mktemp("graphs")
    paths = {}
    for impl in ("onnx", "plugin"):
        spec = ExportSpec(
            loaded.arch, loaded.frames, BATCH, schedule, impl, checkpoint_sha256="cd" * 32
        )
        paths[impl] = folder / f"demo_{impl}.onnx"
        export_onnx(model, spec, paths[impl])
    return paths


@pytest.fixture
def fake_plugin(tmp_path) -> Path:
    lib = tmp_path / "build" / "libvidtldr_plugins.so"
    lib.parent.mkdir()
    # An ELF header of a little-endian 64-bit shared object (e_type ET_DYN), then filler.
    lib.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + b"fake")
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
