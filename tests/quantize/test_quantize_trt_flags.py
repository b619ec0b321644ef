"""TensorRT build settings for Q/DQ graphs, against fake `tensorrt` modules (TensorRT is not
installable here): which flags each version gets, and what is refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.runtime.tensorrt.quantized import (
    apply_build_plan,
    graph_qdq_types,
    network_creation_flags,
    quantized_build_plan,
)


def fake_trt(version: str, fp16: bool = True, fp8: bool = True):
    flags = {"INT8": 1, "TF32": 2, **({"FP16": 3} if fp16 else {}), **({"FP8": 4} if fp8 else {})}
    data_types = SimpleNamespace(**({"FP8": 9} if fp8 else {}), FLOAT=0)
    return SimpleNamespace(
        __version__=version,
        BuilderFlag=SimpleNamespace(**flags),
        DataType=data_types,
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=5),
    )


class FakeConfig:
    def __init__(self):
        self.set, self.cleared = [], []

    def set_flag(self, flag):
        self.set.append(flag)

    def clear_flag(self, flag):
        self.cleared.append(flag)


def test_trt10_int8_sets_the_int8_flag_only():
    trt = fake_trt("10.13.0")
    plan = quantized_build_plan(trt, "int8", {"int8"}, "8.7")
    assert plan.builder_flags == ("INT8",) and plan.clear_flags == ("TF32",)
    assert "FP16" not in plan.builder_flags and not plan.strongly_typed_network
    config = FakeConfig()
    apply_build_plan(trt, config, plan)
    assert config.set == [trt.BuilderFlag.INT8] and config.cleared == [trt.BuilderFlag.TF32]
    assert network_creation_flags(trt, plan) == 0


def test_trt11_is_strongly_typed_without_flags():
    trt = fake_trt("11.0.0", fp16=False)
    plan = quantized_build_plan(trt, "int8", {"int8"}, (8, 7))
    assert plan.builder_flags == () and "strongly typed" in plan.notes[0]


def test_int8_needs_qdq():
    with pytest.raises(VidTLDRError, match="quantize the fp32 export"):
        quantized_build_plan(fake_trt("10.13.0"), "int8", set(), "8.7")


@pytest.mark.parametrize("cc", ["8.6", "7.2", None])
def test_fp8_refused_below_sm89(cc):
    with pytest.raises(VidTLDRError, match="8.9"):
        quantized_build_plan(fake_trt("10.13.0"), "fp8", {"float8e4m3fn"}, cc)


def test_fp8_refused_without_trt_support_or_fp8_graph():
    with pytest.raises(VidTLDRError, match="no FP8"):
        quantized_build_plan(fake_trt("10.0.0", fp8=False), "fp8", {"float8e4m3fn"}, "9.0")
    with pytest.raises(VidTLDRError, match="FP8 Q/DQ"):
        quantized_build_plan(fake_trt("10.13.0"), "fp8", {"int8"}, "8.9")


def test_fp8_on_sm89():
    assert quantized_build_plan(
        fake_trt("10.13.0"), "fp8", {"float8e4m3fn"}, "8.9"
    ).builder_flags == ("FP8",)
    assert (
        quantized_build_plan(
            fake_trt("11.1.0", fp16=False), "fp8", {"float8e4m3fn"}, "12.0"
        ).builder_flags
        == ()
    )


def test_other_precisions_refused():
    with pytest.raises(VidTLDRError, match="int8, fp8"):
        quantized_build_plan(fake_trt("10.13.0"), "fp16", {"int8"}, "8.9")


def test_graph_qdq_types_reads_int8_and_plain_graphs():
    w = numpy_helper.from_array(np.ones((4, 4), np.int8), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.int8), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "s", "zp"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], [w, scale, zp],
    )  # fmt: skip
    assert graph_qdq_types(helper.make_model(graph)) == {"int8"}
    plain = helper.make_graph(
        [helper.make_node("MatMul", ["x", "x"], ["y"])], "p", graph.input, graph.output
    )
    assert graph_qdq_types(helper.make_model(plain)) == set()
