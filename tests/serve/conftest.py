"""Shared fixtures of the serving tests: tiny exported graphs (both merge impls), fake engines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from triton_helpers import BATCH, FAKE_SHARED_OBJECT
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """demo (umt-tiny) exported at batch 2 with --merge-impl onnx and plugin."""
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source

    loaded = load_source("demo-random")
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
    lib.write_bytes(FAKE_SHARED_OBJECT)
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


# --- a real tritonserver (tests/serve/real_triton.py), one per test session ----------------------


def real_repositories(cli, exported: dict[str, Path], fake_plans: dict[str, Path], root: Path):
    """Every kind of repository `vidtldr triton` writes, each under its own folder of `root`."""
    builds = {
        "ensemble": (exported["cli"], "--name", "demo", "--device", "cpu", "--ensemble"),
        "plugin_graph": (exported["plugin"], "--name", "demo_plugin"),
        "plan": (fake_plans["plain"], "--name", "demo_plan"),
        "plan_plugin": (fake_plans["plugin"], "--name", "demo_plan_plugin", "--plugins",
                        fake_plans["library"]),
        "standin": (exported["cli"], "--name", "demo_ort", "--device", "cpu", "--ensemble"),
        # --max-batch 4: the dynamic batcher groups requests for 20 ms at most.
        "dynamic": (exported["dynamic"], "--name", "demo_dyn", "--device", "cpu", "--ensemble",
                    "--max-queue-delay-us", "20000"),
    }  # fmt: skip
    root.mkdir()
    repos = {}
    for key, (target, *args) in builds.items():
        repos[key] = root / key
        r = cli("triton", target, "-o", repos[key], *args)
        assert r.exit_code == 0, r.output
    from real_triton import use_ort_standin

    use_ort_standin(repos["standin"], "demo_ort")
    use_ort_standin(repos["dynamic"], "demo_dyn")
    return repos


@pytest.fixture(scope="session")
def demo_graph(tmp_path_factory) -> Path:
    """`vidtldr export demo` at batch 2, as a user writes it (validate can rebuild its reference)."""
    from vidtldr_deploy.cli.main import app

    path = tmp_path_factory.mktemp("demo_graph") / "demo.onnx"
    args = [
        "export",
        "demo-random",
        "-o",
        str(path),
        "-b",
        str(BATCH),
        "-s",
        "0.25x2",
        "--no-validate",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture(scope="session")
def triton_server(cli, exported, demo_graph, dynamic_graphs, tmp_path_factory):
    """A real tritonserver over real_repositories(); installed first when CI is set, skipped with
    the reason only outside CI (CI must run it: a missing piece fails there)."""
    import real_triton
    from triton_helpers import write_fake_plan

    if real_triton.missing() and os.environ.get("CI"):
        real_triton.install()
    reason = real_triton.missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("real_triton")
    library = root / "build" / "libvidtldr_plugins.so"
    library.parent.mkdir()
    library.write_bytes(FAKE_SHARED_OBJECT)
    plans = {
        "plain": write_fake_plan(root, "plain"),
        "plugin": write_fake_plan(root, "with_plugin", library),
        "library": library,
    }
    repos = real_repositories(
        cli,
        {**exported, "cli": demo_graph, "dynamic": dynamic_graphs["onnx"]},
        plans,
        root / "repos",
    )
    (root / "server").mkdir()
    server = real_triton.TritonServer(list(repos.values()), root / "server")
    server.start()
    server.repos = repos
    try:
        yield server
    finally:
        server.stop()
