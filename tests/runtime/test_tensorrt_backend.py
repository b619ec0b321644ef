"""TensorRT backend (docs/design.md, "TensorRT").

Three layers of tests:
- without TensorRT (always): the clear "not installed" errors, the package importing without it,
  and the export command keeping the ONNX graph and writing no engine;
- against a small fake `tensorrt` module (always): the build's control flow - plugin checks, the
  local functions handed to the parser, precision per TensorRT major, the sidecar and timing cache;
- with real TensorRT and a CUDA GPU (skipped otherwise): tiny demo engines for both merge impls,
  validated against PyTorch.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from support.fake_tensorrt import make_fake_trt, tiny_plugin_graph
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.pipelines import export as pipeline
from vidtldr_deploy.runtime.tensorrt import build as trt_build
from vidtldr_deploy.runtime.tensorrt import environment as trt_env
from vidtldr_deploy.runtime.tensorrt import plugins as trt_plugins
from vidtldr_deploy.runtime.tensorrt import runner as trt_runner
from vidtldr_deploy.runtime.tensorrt import sidecar as sc

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_tensorrt(monkeypatch):
    """`import tensorrt` fails, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


# ------------------------------------------------------------------------------------------------
# Without TensorRT
# ------------------------------------------------------------------------------------------------


def test_require_tensorrt_says_not_installed(no_tensorrt):
    with pytest.raises(VidTLDRError, match="TensorRT is not installed: install it"):
        trt_env.require_tensorrt()


def test_build_engine_without_tensorrt(no_tensorrt, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(VidTLDRError, match="TensorRT is not installed"):
        trt_build.build_engine(tmp_path / "m.onnx", tmp_path / "m.plan")
    assert not (tmp_path / "m.plan").exists() and not (tmp_path / "m.plan.json").exists()


def test_runner_without_tensorrt(no_tensorrt, tmp_path):
    runner = trt_runner.TensorRTRunner(tmp_path / "m.plan")  # records the path, opens nothing
    with pytest.raises(VidTLDRError, match="TensorRT is not installed"), runner:
        pass


def test_missing_plugin_library_points_to_build_plugins(no_tensorrt, tmp_path):
    with pytest.raises(
        VidTLDRError, match=r"does not exist: build it with `vidtldr build-plugins`"
    ):
        trt_plugins.load_plugin_library(tmp_path / "libvidtldr_plugins.so")
    with pytest.raises(VidTLDRError, match="vidtldr build-plugins"):
        trt_plugins.resolve_plugin_library(tmp_path / "nope.so")


def test_too_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(VidTLDRError, match="TensorRT 8.6.1 is too old: TensorRT 10 or newer"):
        trt_env.require_tensorrt()


def test_package_imports_without_tensorrt():
    code = (
        "import sys; sys.modules['tensorrt'] = None\n"
        "import vidtldr_deploy.cli.main, vidtldr_deploy.pipelines.export\n"
        "import vidtldr_deploy.runtime.tensorrt.build, vidtldr_deploy.runtime.tensorrt.runner\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_only_the_backend_imports_tensorrt():
    offenders = []
    for path in (REPO / "vidtldr_deploy").rglob("*.py"):
        if path.parent.name == "tensorrt" and path.parent.parent.name == "runtime":
            continue  # the one package that may
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import tensorrt", "from tensorrt")):
                offenders.append(f"{path}: {stripped}")
    assert offenders == []


def test_engine_file_names():
    assert trt_build.default_timing_cache("out/engine.plan") == Path("out/engine.timing.cache")
    assert pipeline.engine_report_path(None) is None
    assert pipeline.engine_report_path(Path("r/report.json")) == Path("r/report.tensorrt.json")


def test_export_plan_without_tensorrt_fails_before_exporting(no_tensorrt, tmp_path):
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.main import app

    engine = tmp_path / "engine.plan"
    result = CliRunner().invoke(
        app, ["export", "demo-random", "-o", str(engine), "--num-inputs", "1"]
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "TensorRT is not installed" in text and "vidtldr-deploy[tensorrt]" in text
    assert f"-o {tmp_path / 'engine.onnx'}" in text  # how to get the graph alone
    assert "wrote" not in text  # nothing was exported first
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Against a fake tensorrt: the build's control flow
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    def install(version="10.3.0", creators=("Saliency", "Merge"), library=True):
        trt = make_fake_trt(version, set(creators))
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(trt_plugins.ctypes, "CDLL", lambda path, mode=0: None)
        monkeypatch.setattr(trt_plugins, "_LOADED_LIBRARIES", {})
        monkeypatch.setattr(trt_env, "_LOGGER", None)
        lib = tmp_path / "libvidtldr_plugins.so"
        if library:
            lib.write_bytes(b"\x7fELF fake plugin library")
        onnx_path = tiny_plugin_graph(tmp_path / "engine.onnx")
        return trt, onnx_path, lib

    return install


def _files(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_fake_trt10_fp32_build_writes_engine_sidecar_and_cache(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    engine = tmp_path / "engine.plan"
    sidecar = trt_build.build_engine(
        onnx_path, engine, "fp32", workspace_mib=64, plugin_library=lib
    )
    assert _files(tmp_path) == ["engine.onnx", "engine.plan", "engine.plan.json", "engine.timing.cache",
                                "libvidtldr_plugins.so"]  # fmt: skip
    assert sc.read_sidecar(engine) == sidecar
    assert sidecar["tensorrt_version"] == "10.3.0"
    assert sidecar["precision"] == "fp32"
    assert sidecar["plugin_layers"] == 2
    assert sidecar["plugin_library_sha256"] == sc.sha256_file(lib)
    assert sidecar["onnx_sha256"] == sc.sha256_file(onnx_path)
    assert sidecar["engine_sha256"] == sc.sha256_file(engine)
    assert sidecar["schedule"] == {"spec": "1x1", "layers": []}
    assert sidecar["arch"] == "umt-tiny" and sidecar["merge_impl"] == "plugin"
    assert sidecar["inputs"] == {"video": {"shape": [1, 4], "dtype": "float32"}}
    assert sidecar["build"]["strongly_typed"] is True and sidecar["build"]["tf32"] is False
    # fp32: strongly typed network, no FP16, TF32 off, workspace set
    assert trt.calls["network"].flags == 1 << 5
    assert "TF32" not in trt.calls["config"].flags and "FP16" not in trt.calls["config"].flags
    assert trt.calls["config"].pool == {"workspace": 64 << 20}
    # the vidtldr local functions were withheld from the parser (others kept), the file untouched
    assert trt.calls["parsed_functions"] == ["Keep"]
    assert [f.name for f in onnx.load(str(onnx_path)).functions] == ["Saliency", "Merge", "Keep"]
    # the timing cache is reused by the next build
    assert (tmp_path / "engine.timing.cache").read_bytes() == b"+timed"
    sidecar2 = trt_build.build_engine(onnx_path, engine, "fp32", plugin_library=lib)
    assert sidecar2["build"]["timing_cache_reused"] is True
    assert (tmp_path / "engine.timing.cache").read_bytes() == b"+timed+timed"


def test_fake_trt10_fp16_pins_plugin_layers_and_neighbours(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    sidecar = trt_build.build_engine(onnx_path, tmp_path / "e.plan", "fp16", plugin_library=lib)
    config, net = trt.calls["config"], trt.calls["network"]
    assert {"FP16", "OBEY_PRECISION_CONSTRAINTS", "TF32"} <= config.flags
    assert net.flags == 0  # weakly typed: precision from builder flags
    pinned = {layer.name for layer in net.layers if layer.precision == trt.float32}
    # producer of the plugin inputs, both plugins, the consumer of Merge's output; not the Shape
    # layer (int64 output) nor the unrelated layer
    assert pinned == {"before", "sal", "merge", "after"}
    for layer in net.layers:
        if layer.name in pinned:
            assert set(layer.output_types.values()) == {trt.float32}
    assert sidecar["precision"] == "fp16" and sidecar["build"]["fp32_pinned_layers"] == 4


def test_fake_trt11_fp16_from_fp32_graph_is_refused(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("11.1.0")
    with pytest.raises(VidTLDRError, match="always strongly typed.*is fp32.*--precision fp32"):
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan", "fp16", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path) and "engine.plan.json" not in _files(tmp_path)


def test_fake_trt11_fp32_builds_strongly_typed(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("11.1.0")
    sidecar = trt_build.build_engine(
        onnx_path, tmp_path / "engine.plan", "fp32", plugin_library=lib
    )
    assert trt.calls["network"].flags == 0  # TensorRT 11: always strongly typed, no flag needed
    assert sidecar["build"]["strongly_typed"] is True


def test_fake_missing_creator_names_the_op_and_the_fix(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0", creators=("Saliency",))
    with pytest.raises(VidTLDRError) as err:
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    text = str(err.value)
    assert "vidtldr::Merge" in text and "namespace 'vidtldr'" in text
    assert "vidtldr build-plugins" in text and "--merge-impl onnx" in text
    assert "engine.plan" not in _files(tmp_path)


def test_fake_missing_plugin_library(fake_env, tmp_path, monkeypatch):
    trt, onnx_path, lib = fake_env("10.3.0", library=False)
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(VidTLDRError) as err:
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan")
    text = str(err.value)
    assert "Saliency" in text and "Merge" in text
    assert "vidtldr build-plugins" in text and "--merge-impl onnx" in text
    with pytest.raises(VidTLDRError, match="does not exist: build it with `vidtldr build-plugins`"):
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path)


def test_fake_export_plan_without_plugins_fails_before_exporting(fake_env, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.main import app

    fake_env("10.3.0", library=False)
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(tmp_path / "nowhere"))
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "export",
        "demo-random",
        "-o",
        str(out / "e.plan"),
        "--merge-impl",
        "plugin",
        "--num-inputs",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "vidtldr build-plugins" in text and "--merge-impl onnx" in text
    assert list(out.iterdir()) == []


def test_fake_graph_without_vidtldr_nodes_needs_no_library(fake_env, tmp_path):
    trt, _, _ = fake_env("10.3.0", creators=())
    graph = helper.make_graph(
        [helper.make_node("Relu", ["video"], ["out"], name="r")], "g",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )  # fmt: skip
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    sidecar = trt_build.build_engine(
        path, tmp_path / "plain.plan", plugin_library=tmp_path / "absent.so"
    )
    assert sidecar["plugin_library_sha256"] is None and sidecar["plugin_layers"] == 0


def test_fake_build_failure_leaves_no_engine(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    trt.Builder.build_serialized_network = lambda self, network, config: None
    with pytest.raises(VidTLDRError, match="could not build an engine"):
        pipeline.build_and_validate(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path) and "engine.plan.json" not in _files(tmp_path)


def test_fake_bad_precision(fake_env, tmp_path):
    _, onnx_path, lib = fake_env("10.3.0")
    with pytest.raises(VidTLDRError, match="--precision must be one of fp32, fp16"):
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan", "int4", plugin_library=lib)


# ------------------------------------------------------------------------------------------------
# Real TensorRT on a CUDA GPU
# ------------------------------------------------------------------------------------------------


def _real_tensorrt_or_skip():
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return trt_env.require_tensorrt()


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("merge_impl", ["onnx", "plugin"])
def test_real_engine_matches_pytorch(merge_impl, tmp_path):
    _real_tensorrt_or_skip()
    from vidtldr_deploy.export.metadata import ExportSpec
    from vidtldr_deploy.export.onnx_export import export_onnx
    from vidtldr_deploy.models.source import load_source
    from vidtldr_deploy.runtime.plugin_build import find_plugin_library
    from vidtldr_deploy.validate.inputs import make_inputs
    from vidtldr_deploy.validate.tolerances import default_tolerances

    plugin = None
    if merge_impl == "plugin":
        try:
            plugin = find_plugin_library()
        except VidTLDRError as err:
            pytest.skip(f"plugin library not built: {err}")
    loaded = load_source("demo-random")
    model = loaded.model
    schedule = loaded.schedule("0.25x2")
    spec = ExportSpec(loaded.arch, loaded.frames, 1, schedule, merge_impl, checkpoint=loaded.label)
    onnx_path, engine = tmp_path / "m.onnx", tmp_path / "m.plan"
    export_onnx(model, spec, onnx_path)
    built = pipeline.build_and_validate(
        onnx_path, engine, loaded, schedule,
        make_inputs((1, 3, loaded.frames, model.cfg.img_size, model.cfg.img_size), 0, 2),
        default_tolerances("fp32"), precision="fp32", plugin_library=plugin,
    )  # fmt: skip
    assert engine.is_file() and sc.sidecar_path(engine).is_file()
    assert built.sidecar["plugin_layers"] == (2 * 2 if merge_impl == "plugin" else 0)
    assert built.validation.passed, built.validation.to_dict()
    # the runner loads again from the files alone, and says so when the sidecar does not match
    with trt_runner.TensorRTRunner(engine, plugin_library=plugin) as runner:
        out = runner.run(np.zeros(runner.input_shape, np.float32))
    assert set(out) == set(built.sidecar["outputs"])
    side = sc.read_sidecar(engine)
    side["tensorrt_version"] = "0.0.0"
    sc.write_sidecar(engine, side)
    with pytest.raises(VidTLDRError, match="TensorRT 0.0.0"):
        with trt_runner.TensorRTRunner(engine, plugin_library=plugin):
            pass


# ------------------------------------------------------------------------------------------------
# INT8: explicit Q/DQ graphs (export --precision int8)
# ------------------------------------------------------------------------------------------------


def _with_qdq(path: Path) -> Path:
    """The tiny plugin graph with an INT8 Q/DQ pair on its input, as the INT8 export writes them."""
    model = onnx.load(str(path))
    model.graph.initializer.extend([
        helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]),
        helper.make_tensor("zp", TensorProto.INT8, [], [0]),
    ])  # fmt: skip
    q = helper.make_node("QuantizeLinear", ["video", "s", "zp"], ["video_q"], name="q")
    dq = helper.make_node("DequantizeLinear", ["video_q", "s", "zp"], ["video_dq"], name="dq")
    for node in model.graph.node:
        node.input[:] = ["video_dq" if name == "video" else name for name in node.input]
    nodes = [q, dq, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(path))
    return path


def test_fake_trt10_int8_builds_from_qdq_with_only_the_int8_flag(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    _with_qdq(onnx_path)
    sidecar = trt_build.build_engine(
        onnx_path, tmp_path / "engine.plan", "int8", plugin_library=lib
    )
    flags = trt.calls["config"].flags
    assert "INT8" in flags and "FP16" not in flags and "TF32" not in flags
    assert sidecar["precision"] == "int8"
    assert sidecar["build"]["quantization"]["precision"] == "int8"


def test_fake_trt11_int8_is_strongly_typed_from_the_graph(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("11.0.0")
    _with_qdq(onnx_path)
    sidecar = trt_build.build_engine(
        onnx_path, tmp_path / "engine.plan", "int8", plugin_library=lib
    )
    assert "INT8" not in trt.calls["config"].flags
    assert sidecar["build"]["strongly_typed"] is True


def test_fake_int8_without_qdq_is_refused(fake_env, tmp_path):
    _, onnx_path, lib = fake_env("10.3.0")
    with pytest.raises(VidTLDRError, match="needs a graph with explicit INT8 Q/DQ"):
        trt_build.build_engine(onnx_path, tmp_path / "engine.plan", "int8", plugin_library=lib)
    assert not (tmp_path / "engine.plan").exists()


def test_fake_plugin_library_is_searched_once_per_export(fake_env, tmp_path, monkeypatch):
    """check_engine_build finds the library; the build and the engine's runner are handed that
    path instead of searching $VIDTLDR_PLUGIN_DIR again."""
    from vidtldr_deploy.runtime import plugin_build

    trt, onnx_path, lib = fake_env("10.3.0")
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(tmp_path))
    searches: list = []
    find = plugin_build.find_plugin_library

    def counting(path=None):
        searches.append(path)
        return find(path)

    monkeypatch.setattr(plugin_build, "find_plugin_library", counting)
    opened: list = []

    class Recorder:
        def __init__(self, engine_path, plugin_library=None):
            opened.append(plugin_library)

        def __enter__(self):
            raise KeyboardInterrupt  # stop before running: only the hand-over is under test

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(trt_runner, "TensorRTRunner", Recorder)
    resolved = trt_plugins.check_engine_build("plugin", None)
    assert resolved == lib.resolve()
    with pytest.raises(KeyboardInterrupt):
        pipeline.build_and_validate(
            onnx_path, tmp_path / "engine.plan", inputs=[np.zeros((1, 4), np.float32)],
            plugin_library=resolved,
        )  # fmt: skip
    assert [p for p in searches if p is None] == [None]  # one search, in check_engine_build
    assert opened == [str(resolved)]  # the runner gets the library the build loaded
