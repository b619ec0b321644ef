"""The engine build's precision plan as data: layers in, flags and fp32 layers out, no TensorRT."""

from __future__ import annotations

import pytest

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.runtime.tensorrt.precision_plan import (
    NORMALIZATION,
    OTHER,
    PLUGIN,
    LayerInfo,
    TensorRTFeatures,
    merge_island_layers,
    plan_precision,
    strongly_typed_network,
)
from vidtldr_deploy.runtime.tensorrt.quantized import QuantizedBuildPlan

TRT10 = TensorRTFeatures("10.3.0", strongly_typed_only=False)
TRT11 = TensorRTFeatures("11.1.0", strongly_typed_only=True)


def _layer(name, kind=OTHER, inputs=(), outputs=(), floats=True):
    return LayerInfo(name, kind, tuple(inputs), tuple(outputs or (f"{name}:0",)), floats)


# One block of a merging ViT: norm -> qkv -> attention; the merge island reads the residual sum;
# its output feeds the MLP's norm; a Shape layer reads the island's output too.
BLOCK = [
    _layer("norm1", NORMALIZATION, ["x"], ["n1"]),
    _layer("qkv", OTHER, ["n1"], ["qkv"]),
    _layer("residual", OTHER, ["x", "qkv"], ["h"]),
    _layer("saliency", PLUGIN, ["qkv", "qkv"], ["score"]),
    _layer("merge", PLUGIN, ["h", "score"], ["hm", "size"]),
    _layer("norm2", NORMALIZATION, ["hm"], ["n2"]),
    _layer("shape_of", OTHER, ["hm"], ["shape"], floats=False),
    _layer("fc1", OTHER, ["n2"], ["f1"]),
]


def test_merge_islands_are_the_plugins_their_feeders_and_readers():
    assert merge_island_layers(BLOCK) == {
        "qkv": "feeds a merge island",
        "residual": "feeds a merge island",
        "saliency": "merge island",
        "merge": "merge island",
        "norm2": "reads a merge island",
        "shape_of": "reads a merge island",
    }


def test_fp16_on_trt10_pins_islands_and_norms_but_not_integer_layers():
    plan = plan_precision("fp16", BLOCK, TRT10, graph_has_half=False)
    assert plan.builder_flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS") and plan.tf32
    assert plan.strongly_typed is False
    # network order; fc1 is neither island nor norm, shape_of has integer outputs
    assert plan.fp32_layers == ("norm1", "qkv", "residual", "saliency", "merge", "norm2")
    assert plan.reasons["norm1"] == "normalization" and plan.reasons["merge"] == "merge island"


def test_fp32_is_strongly_typed_without_tf32_and_pins_nothing():
    for features in (TRT10, TRT11):
        plan = plan_precision("fp32", BLOCK, features, graph_has_half=False)
        assert plan.strongly_typed and plan.clear_flags == ("TF32",) and not plan.tf32
        assert plan.builder_flags == () and plan.fp32_layers == ()
    no_tf32 = TensorRTFeatures("10.3.0", False, has_tf32_flag=False)
    assert plan_precision("fp32", BLOCK, no_tf32, False).clear_flags == ()


def test_half_graphs_and_fp16_on_trt11_take_precision_from_the_graph():
    with pytest.raises(VidTLDRError, match="carries fp16 tensors.*--precision fp16"):
        plan_precision("fp32", BLOCK, TRT10, graph_has_half=True, graph="m.onnx")
    with pytest.raises(
        VidTLDRError, match="TensorRT 11.1.0.*always strongly typed.*m.onnx is fp32"
    ):
        plan_precision("fp16", BLOCK, TRT11, graph_has_half=False, graph="m.onnx")
    plan = plan_precision("fp16", BLOCK, TRT11, graph_has_half=True)
    assert plan.strongly_typed and plan.fp32_layers == () and plan.builder_flags == ()


def test_quantized_builds_take_the_qdq_plans_flags_and_pin_nothing():
    qplan = QuantizedBuildPlan("int8", False, ("INT8",), ("TF32",), ["weakly typed"])
    plan = plan_precision("int8", BLOCK, TRT10, graph_has_half=False, quantization=qplan)
    assert plan.builder_flags == ("INT8",) and plan.clear_flags == ("TF32",)
    assert plan.fp32_layers == () and plan.quantization is qplan
    assert plan.notes == ("weakly typed",) and plan.strongly_typed is False


def test_the_network_typing_is_decided_before_parsing():
    assert strongly_typed_network("fp32", TRT10) is True
    assert strongly_typed_network("fp16", TRT10) is False
    assert strongly_typed_network("int8", TRT10) is False
    assert all(strongly_typed_network(p, TRT11) for p in ("fp32", "fp16", "int8"))
