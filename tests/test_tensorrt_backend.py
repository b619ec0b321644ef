"""TensorRT backend (DESIGN.md, "TensorRT").

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
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vidtldr_deploy.backends import engine_sidecar as sc
from vidtldr_deploy.backends import tensorrt as trt_backend
from vidtldr_deploy.errors import VidTLDRError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_tensorrt(monkeypatch):
    """`import tensorrt` fails, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


# ------------------------------------------------------------------------------------------------
# Without TensorRT
# ------------------------------------------------------------------------------------------------


def test_require_tensorrt_says_not_installed(no_tensorrt):
    with pytest.raises(VidTLDRError, match="TensorRT is not installed: install it"):
        trt_backend.require_tensorrt()


def test_build_engine_without_tensorrt(no_tensorrt, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(VidTLDRError, match="TensorRT is not installed"):
        trt_backend.build_engine(tmp_path / "m.onnx", tmp_path / "m.plan")
    assert not (tmp_path / "m.plan").exists() and not (tmp_path / "m.plan.json").exists()


def test_runner_without_tensorrt(no_tensorrt, tmp_path):
    with pytest.raises(VidTLDRError, match="TensorRT is not installed"):
        trt_backend.TensorRTRunner(tmp_path / "m.plan")


def test_missing_plugin_library_points_to_build_plugins(no_tensorrt, tmp_path):
    with pytest.raises(VidTLDRError, match=r"does not exist: build it with `vidtldr build-plugins`"):
        trt_backend.load_plugin_library(tmp_path / "libvidtldr_plugins.so")
    with pytest.raises(VidTLDRError, match="vidtldr build-plugins"):
        trt_backend.resolve_plugin_library(tmp_path / "nope.so")


def test_too_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(VidTLDRError, match="TensorRT 8.6.1 is too old: TensorRT 10 or newer"):
        trt_backend.require_tensorrt()


def test_package_imports_without_tensorrt():
    code = (
        "import sys; sys.modules['tensorrt'] = None\n"
        "import vidtldr_deploy.cli.app, vidtldr_deploy.backends.tensorrt, vidtldr_deploy.backends.engine_sidecar\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_only_the_backend_imports_tensorrt():
    offenders = []
    for path in (REPO / "vidtldr_deploy").rglob("*.py"):
        if path.name == "tensorrt.py" and path.parent.name == "backends":
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import tensorrt", "from tensorrt")):
                offenders.append(f"{path}: {stripped}")
    assert offenders == []


def test_engine_file_names():
    assert trt_backend.default_timing_cache("out/engine.plan") == Path("out/engine.timing.cache")
    assert trt_backend.engine_report_path(None) is None
    assert trt_backend.engine_report_path(Path("r/report.json")) == Path("r/report.tensorrt.json")


def test_export_plan_without_tensorrt_fails_before_exporting(no_tensorrt, tmp_path):
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.app import app

    engine = tmp_path / "engine.plan"
    result = CliRunner().invoke(app, ["export", "demo", "-o", str(engine), "--num-inputs", "1"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "TensorRT is not installed" in text and "vidtldr-deploy[tensorrt]" in text
    assert f"-o {tmp_path / 'engine.onnx'}" in text  # how to get the graph alone
    assert "wrote" not in text  # nothing was exported first
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Against a fake tensorrt: the build's control flow
# ------------------------------------------------------------------------------------------------


class _Enum:
    def __init__(self, **values):
        self.__dict__.update(values)


class FakeTensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, shape, dtype


class FakeLayer:
    def __init__(self, name, type_, inputs, outputs):
        self.name, self.type = name, type_
        self._inputs, self._outputs = inputs, outputs
        self.precision = None
        self.output_types: dict[int, object] = {}

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, i):
        return self._inputs[i]

    def get_output(self, i):
        return self._outputs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


class FakeNetwork:
    def __init__(self, flags):
        self.flags = flags
        self.layers: list[FakeLayer] = []
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []

    num_layers = property(lambda self: len(self.layers))
    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_layer(self, i):
        return self.layers[i]

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]


def make_fake_trt(version: str, creators: set[str]):
    """A tensorrt stand-in with the API surface build_engine uses (TensorRT 10 or 11 flavour)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])
    trt.float32, trt.float16, trt.int64, trt.int32, trt.bool = "f32", "f16", "i64", "i32", "b"
    trt.LayerType = _Enum(PLUGIN_V3="PLUGIN_V3", MATRIX_MULTIPLY="MM", SHAPE="SHAPE")
    flags = dict(TF32=1, DEBUG=2)
    if major < 11:
        flags.update(FP16=3, OBEY_PRECISION_CONSTRAINTS=4, PREFER_PRECISION_CONSTRAINTS=5)
    trt.BuilderFlag = _Enum(**flags)
    trt.NetworkDefinitionCreationFlag = _Enum(STRONGLY_TYPED=5)
    trt.MemoryPoolType = _Enum(WORKSPACE="workspace")
    trt.calls = {"parsed_functions": None, "creators": creators, "registered": set()}

    class ILogger:
        Severity = _Enum(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self):
            pass

    trt.ILogger = ILogger

    class Registry:
        def get_creator(self, name, version, namespace):
            ok = name in trt.calls["registered"] and version == "1" and namespace == "vidtldr"
            return object() if ok else None

        def load_library(self, path):
            trt.calls["registered"] |= trt.calls["creators"]
            return "handle"

    registry = Registry()
    trt.get_plugin_registry = lambda: registry

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+timed"

    class Config:
        def __init__(self):
            self.flags = {"TF32"}
            self.pool = {}
            self.cache = None
            trt.calls["config"] = self

        def set_flag(self, flag):
            self.flags.add(_name(trt.BuilderFlag, flag))

        def clear_flag(self, flag):
            self.flags.discard(_name(trt.BuilderFlag, flag))

        def set_memory_pool_limit(self, pool, size):
            self.pool[pool] = size

        def create_timing_cache(self, data):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return FakeNetwork(flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.calls["network"] = network
            return b"serialized-engine:" + ",".join(sorted(config.flags)).encode()

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network

        def parse(self, data, path=None):
            model = onnx.load_from_string(data)
            trt.calls["parsed_functions"] = [f.name for f in model.functions]
            local = {f.name for f in model.functions}
            net = self.network
            types_ = {o.name: o for o in model.graph.output}
            for i in model.graph.input:
                dims = tuple(d.dim_value for d in i.type.tensor_type.shape.dim)
                net.inputs.append(FakeTensor(i.name, dims, trt.float32))
            tensors = {t.name: t for t in net.inputs}
            for n in model.graph.node:
                if n.domain == "vidtldr" and n.op_type not in local:
                    if n.op_type not in trt.calls["registered"]:
                        return False  # the parser's fallback plugin importer finds nothing
                    kind = trt.LayerType.PLUGIN_V3
                else:
                    kind = "SHAPE" if n.op_type == "Shape" else "MM"
                dtype = trt.int64 if n.op_type == "Shape" else trt.float32
                outs = [FakeTensor(o, (1,), dtype) for o in n.output]
                tensors.update({t.name: t for t in outs})
                net.layers.append(FakeLayer(n.name, kind, [tensors[i] for i in n.input], outs))
            for name in types_:
                net.outputs.append(tensors[name])
            return True

        num_errors = 0

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


def _name(enum, value):
    return next(k for k, v in vars(enum).items() if v == value)


def tiny_plugin_graph(path: Path, with_functions: bool = True) -> Path:
    """video -> A (MatMul-ish) -> vidtldr.Saliency -> vidtldr.Merge -> B -> out, plus a Shape."""
    f32 = TensorProto.FLOAT
    nodes = [
        helper.make_node("Relu", ["video"], ["x"], name="before"),
        helper.make_node("Saliency", ["x", "x"], ["score"], name="sal", domain="vidtldr", scale=0.5,
                         plugin_namespace="vidtldr", plugin_version="1"),
        helper.make_node("Merge", ["x", "x", "score"], ["xm", "sm"], name="merge", domain="vidtldr", r=1,
                         plugin_namespace="vidtldr", plugin_version="1"),
        helper.make_node("Relu", ["xm"], ["out"], name="after"),
        helper.make_node("Shape", ["out"], ["shape"], name="shape_of"),
        helper.make_node("Relu", ["video"], ["unrelated"], name="elsewhere"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("video", f32, [1, 4])],
        [helper.make_tensor_value_info("out", f32, None), helper.make_tensor_value_info("shape", TensorProto.INT64, None),
         helper.make_tensor_value_info("unrelated", f32, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vidtldr", 1)])
    if with_functions:
        for op in ("Saliency", "Merge"):
            model.functions.append(
                helper.make_function("vidtldr", op, ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                                     [helper.make_opsetid("", 18)])
            )  # fmt: skip
    model.functions.append(
        helper.make_function("other", "Keep", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])],
                             [helper.make_opsetid("", 18)])
    )  # fmt: skip
    model.metadata_props.add(key="vidtldr.schedule", value=json.dumps({"spec": "1x1", "layers": []}))
    model.metadata_props.add(key="vidtldr.arch", value="umt-tiny")
    model.metadata_props.add(key="vidtldr.merge_impl", value="plugin")
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    def install(version="10.3.0", creators=("Saliency", "Merge"), library=True):
        trt = make_fake_trt(version, set(creators))
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(trt_backend.ctypes, "CDLL", lambda path, mode=0: None)
        monkeypatch.setattr(trt_backend, "_LOADED_LIBRARIES", {})
        monkeypatch.setattr(trt_backend, "_LOGGER", None)
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
    sidecar = trt_backend.build_engine(onnx_path, engine, "fp32", workspace_mib=64, plugin_library=lib)
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
    sidecar2 = trt_backend.build_engine(onnx_path, engine, "fp32", plugin_library=lib)
    assert sidecar2["build"]["timing_cache_reused"] is True
    assert (tmp_path / "engine.timing.cache").read_bytes() == b"+timed+timed"


def test_fake_trt10_fp16_pins_plugin_layers_and_neighbours(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    sidecar = trt_backend.build_engine(onnx_path, tmp_path / "e.plan", "fp16", plugin_library=lib)
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
        trt_backend.build_engine(onnx_path, tmp_path / "engine.plan", "fp16", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path) and "engine.plan.json" not in _files(tmp_path)


def test_fake_trt11_fp32_builds_strongly_typed(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("11.1.0")
    sidecar = trt_backend.build_engine(onnx_path, tmp_path / "engine.plan", "fp32", plugin_library=lib)
    assert trt.calls["network"].flags == 0  # TensorRT 11: always strongly typed, no flag needed
    assert sidecar["build"]["strongly_typed"] is True


def test_fake_missing_creator_names_the_op_and_the_fix(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0", creators=("Saliency",))
    with pytest.raises(VidTLDRError) as err:
        trt_backend.build_engine(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    text = str(err.value)
    assert "vidtldr::Merge" in text and "namespace 'vidtldr'" in text
    assert "vidtldr build-plugins" in text and "--merge-impl onnx" in text
    assert "engine.plan" not in _files(tmp_path)


def test_fake_missing_plugin_library(fake_env, tmp_path, monkeypatch):
    trt, onnx_path, lib = fake_env("10.3.0", library=False)
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(VidTLDRError) as err:
        trt_backend.build_engine(onnx_path, tmp_path / "engine.plan")
    text = str(err.value)
    assert "Saliency" in text and "Merge" in text
    assert "vidtldr build-plugins" in text and "--merge-impl onnx" in text
    with pytest.raises(VidTLDRError, match="does not exist: build it with `vidtldr build-plugins`"):
        trt_backend.build_engine(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path)


def test_fake_export_plan_without_plugins_fails_before_exporting(fake_env, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vidtldr_deploy.cli.app import app

    fake_env("10.3.0", library=False)
    monkeypatch.setenv("VIDTLDR_PLUGIN_DIR", str(tmp_path / "nowhere"))
    out = tmp_path / "out"
    out.mkdir()
    args = ["export", "demo", "-o", str(out / "e.plan"), "--merge-impl", "plugin", "--num-inputs", "1"]
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
    sidecar = trt_backend.build_engine(path, tmp_path / "plain.plan", plugin_library=tmp_path / "absent.so")
    assert sidecar["plugin_library_sha256"] is None and sidecar["plugin_layers"] == 0


def test_fake_build_failure_leaves_no_engine(fake_env, tmp_path):
    trt, onnx_path, lib = fake_env("10.3.0")
    trt.Builder.build_serialized_network = lambda self, network, config: None
    with pytest.raises(VidTLDRError, match="could not build an engine"):
        trt_backend.build_and_validate(onnx_path, tmp_path / "engine.plan", plugin_library=lib)
    assert "engine.plan" not in _files(tmp_path) and "engine.plan.json" not in _files(tmp_path)


def test_fake_bad_precision(fake_env, tmp_path):
    _, onnx_path, lib = fake_env("10.3.0")
    with pytest.raises(VidTLDRError, match="--precision must be one of fp32, fp16"):
        trt_backend.build_engine(onnx_path, tmp_path / "engine.plan", "int8", plugin_library=lib)


# ------------------------------------------------------------------------------------------------
# Real TensorRT on a CUDA GPU
# ------------------------------------------------------------------------------------------------


def _real_tensorrt_or_skip():
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return trt_backend.require_tensorrt()


@pytest.mark.parametrize("merge_impl", ["onnx", "plugin"])
def test_real_engine_matches_pytorch(merge_impl, tmp_path):
    _real_tensorrt_or_skip()
    from vidtldr_deploy.backends.plugin_build import find_plugin_library
    from vidtldr_deploy.compare import default_tolerances
    from vidtldr_deploy.core.schedule import resolve_schedule
    from vidtldr_deploy.export.onnx_export import ExportSpec, export_onnx
    from vidtldr_deploy.models.source import load_source
    from vidtldr_deploy.validate import make_inputs

    plugin = None
    if merge_impl == "plugin":
        try:
            plugin = find_plugin_library()
        except VidTLDRError as err:
            pytest.skip(f"plugin library not built: {err}")
    loaded = load_source("demo")
    model = loaded.model
    schedule = resolve_schedule("0.25x2", model.cfg.depth, model.num_tokens, loaded.arch)
    spec = ExportSpec(loaded.arch, loaded.frames, 1, schedule, merge_impl, checkpoint=loaded.label)
    onnx_path, engine = tmp_path / "m.onnx", tmp_path / "m.plan"
    export_onnx(model, spec, onnx_path)
    built = trt_backend.build_and_validate(
        onnx_path, engine, loaded, schedule,
        make_inputs((1, 3, loaded.frames, model.cfg.img_size, model.cfg.img_size), 0, 2),
        default_tolerances("fp32"), precision="fp32", plugin_library=plugin,
    )  # fmt: skip
    assert engine.is_file() and sc.sidecar_path(engine).is_file()
    assert built.sidecar["plugin_layers"] == (2 * 2 if merge_impl == "plugin" else 0)
    assert built.validation.passed, built.validation.to_dict()
    # the runner loads again from the files alone, and says so when the sidecar does not match
    runner = trt_backend.TensorRTRunner(engine, plugin_library=plugin)
    out = runner.run(np.zeros(runner.input_shape, np.float32))
    assert set(out) == set(built.sidecar["outputs"])
    side = sc.read_sidecar(engine)
    side["tensorrt_version"] = "0.0.0"
    sc.write_sidecar(engine, side)
    with pytest.raises(VidTLDRError, match="TensorRT 0.0.0"):
        trt_backend.TensorRTRunner(engine, plugin_library=plugin)
