"""A tensorrt stand-in with the API surface the engine build uses (TensorRT 10 or 11 flavour), and a
tiny graph with vidtldr nodes to build: the build's control flow is tested without TensorRT."""

from __future__ import annotations

import ctypes
import json
import types
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


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
        flags.update(FP16=3, OBEY_PRECISION_CONSTRAINTS=4, PREFER_PRECISION_CONSTRAINTS=5, INT8=6)
    trt.BuilderFlag = _Enum(**flags)
    trt.NetworkDefinitionCreationFlag = _Enum(STRONGLY_TYPED=5)
    trt.MemoryPoolType = _Enum(WORKSPACE="workspace")
    trt.TensorIOMode = _Enum(INPUT="input", OUTPUT="output")
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

        def add_optimization_profile(self, profile):
            self.profiles = getattr(self, "profiles", []) + [profile]
            trt.calls["profiles"] = self.profiles
            return len(self.profiles) - 1

    class OptimizationProfile:
        def __init__(self):
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's parameter names
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return FakeNetwork(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return OptimizationProfile()

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
                dims = _dims(i)
                net.inputs.append(FakeTensor(i.name, dims, trt.float32))
            tensors = {t.name: t for t in net.inputs}
            # weights (initializers) become constant tensors, as the real parser makes them
            tensors.update(
                {
                    i.name: FakeTensor(i.name, tuple(i.dims), trt.float32)
                    for i in model.graph.initializer
                }
            )
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
            for name, value in types_.items():
                if value.type.tensor_type.HasField("shape"):  # as the parser infers it
                    tensors[name].shape = _dims(value)
                net.outputs.append(tensors[name])
            return True

        num_errors = 0

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    trt.Runtime = _fake_runtime(trt)
    return trt


def _fake_runtime(trt):
    """trt.Runtime whose engine is the last network built, with its optimisation profile. Running
    it reads the input from host memory at the bound address (the tests' buffers are CPU tensors)
    and writes each (batch, K) output as 2 * clip[:K] + 1, so every clip's result is its own."""

    class Engine:
        def __init__(self, network, profiles):
            self.tensors = [(t, "input") for t in network.inputs]
            self.tensors += [(t, "output") for t in network.outputs]
            self.profile = profiles[0].shapes if profiles else {}
            self.num_io_tensors = len(self.tensors)

        def _tensor(self, name):
            return next(t for t, _ in self.tensors if t.name == name)

        def get_tensor_name(self, i):
            return self.tensors[i][0].name

        def get_tensor_shape(self, name):
            return tuple(self._tensor(name).shape)

        def get_tensor_dtype(self, name):
            return self._tensor(name).dtype

        def get_tensor_mode(self, name):
            mode = next(m for t, m in self.tensors if t.name == name)
            return trt.TensorIOMode.INPUT if mode == "input" else trt.TensorIOMode.OUTPUT

        def get_tensor_profile_shape(self, name, index):
            assert index == 0
            return self.profile[name]

        def create_execution_context(self):
            return ExecutionContext(self)

    class ExecutionContext:
        def __init__(self, engine):
            self.engine, self.addresses, self.batch = engine, {}, None

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def set_input_shape(self, name, shape):
            low, _, high = self.engine.profile[name]
            shape = tuple(shape)
            ok = len(shape) == len(low) and all(
                lo <= d <= hi for lo, d, hi in zip(low, shape, high)
            )
            trt.calls.setdefault("input_shapes", []).append(shape)
            if ok:
                self.batch = shape[0]
            return ok

        def get_tensor_shape(self, name):
            shape = self.engine.get_tensor_shape(name)
            return tuple(self.batch if d < 0 else d for d in shape)

        def execute_async_v3(self, stream):
            inputs = [t for t, m in self.engine.tensors if m == "input"]
            if any(d < 0 for d in inputs[0].shape) and self.batch is None:
                return False  # a dynamic engine needs its input shape first
            video = _host_floats(
                self.addresses[inputs[0].name], self.get_tensor_shape(inputs[0].name)
            )
            for t, mode in self.engine.tensors:
                if mode == "output":
                    shape = self.get_tensor_shape(t.name)
                    out = _host_floats(self.addresses[t.name], shape)
                    out[...] = 2 * video.reshape(len(video), -1)[:, : shape[1]] + 1
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine(trt.calls["network"], trt.calls.get("profiles"))

    return Runtime


def _host_floats(address: int, shape) -> np.ndarray:
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(address)).reshape(shape)


def _dims(value) -> tuple[int, ...]:
    """A value's shape as TensorRT reports it: a named (dynamic) dim is -1."""
    return tuple(
        d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
    )


def _name(enum, value):
    return next(k for k, v in vars(enum).items() if v == value)


def _merge_island() -> list:
    """video -> Relu -> vidtldr.Saliency -> vidtldr.Merge -> Relu -> out."""
    return [
        helper.make_node("Relu", ["video"], ["x"], name="before"),
        helper.make_node("Saliency", ["x", "x"], ["score"], name="sal", domain="vidtldr", scale=0.5,
                         plugin_namespace="vidtldr", plugin_version="1"),
        helper.make_node("Merge", ["x", "x", "score"], ["xm", "sm"], name="merge", domain="vidtldr", r=1,
                         plugin_namespace="vidtldr", plugin_version="1"),
        helper.make_node("Relu", ["xm"], ["out"], name="after"),
    ]  # fmt: skip


def tiny_plugin_graph(path: Path, with_functions: bool = True) -> Path:
    """video -> A (MatMul-ish) -> vidtldr.Saliency -> vidtldr.Merge -> B -> out, plus a Shape."""
    f32 = TensorProto.FLOAT
    nodes = _merge_island() + [
        helper.make_node("Shape", ["out"], ["shape"], name="shape_of"),
        helper.make_node("Relu", ["video"], ["unrelated"], name="elsewhere"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("video", f32, [1, 4])],
        [helper.make_tensor_value_info("out", f32, None), helper.make_tensor_value_info("shape", TensorProto.INT64, None),
         helper.make_tensor_value_info("unrelated", f32, None)],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vidtldr", 1)]
    )
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
    add_vidtldr_metadata(model, merge_impl="plugin")
    onnx.save(model, str(path))
    return path


def add_vidtldr_metadata(model, merge_impl: str = "onnx", max_batch: int | None = None) -> None:
    """The `vidtldr.*` description an export writes (the build reads it through the one checked
    reader, so a graph without it is refused before TensorRT sees it). `max_batch`: as export
    --max-batch N records it (a dynamic batch 1..N, the recorded input shape at batch N)."""
    entries = {
        "schedule": json.dumps({"spec": "1x1", "layers": []}), "arch": "umt-tiny",
        "merge_impl": merge_impl, "frames": "4", "input_shape": f"[{max_batch or 1}, 3, 4, 8, 8]",
    }  # fmt: skip
    if max_batch is not None:
        entries["max_batch"] = str(max_batch)
    for key, value in entries.items():
        model.metadata_props.add(key=f"vidtldr.{key}", value=value)


def tiny_dynamic_graph(path: Path, max_batch: int, width: int = 4) -> Path:
    """video (batch, width) -> Relu -> vidtldr.Saliency -> vidtldr.Merge -> Relu -> out (batch,
    width), batch a named dim, as export --max-batch writes it (metadata max_batch)."""
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        _merge_island(), "g", [helper.make_tensor_value_info("video", f32, ["batch", width])],
        [helper.make_tensor_value_info("out", f32, ["batch", width])],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vidtldr", 1)]
    )
    add_vidtldr_metadata(model, merge_impl="plugin", max_batch=max_batch)
    onnx.save(model, str(path))
    return path
