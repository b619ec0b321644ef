"""Tiny ONNX graphs carrying vidtldr metadata (the demo's geometry) around one node, for the tests
of what commands do with a graph's metadata without exporting a model."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from vidtldr_deploy.constants import META_PREFIX


def graph_with_metadata(tmp_path, node=None, initializer=(), **meta):
    """g.onnx: `node` (default: Identity video -> pooled) with the demo's metadata, `meta` over it."""
    base = {
        "arch": "umt-tiny", "frames": "4", "batch": "1", "input_shape": "[1, 3, 4, 32, 32]",
        "schedule": json.dumps({"spec": "0.25x2", "layers": []}), "checkpoint": "demo:umt-tiny:seed0",
        "checkpoint_sha256": "", "merge_impl": "onnx",
    }  # fmt: skip
    base.update(meta)
    node = node or helper.make_node("Identity", ["video"], ["pooled"])
    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 3, 4, 32, 32])
    y = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 3, 4, 32, 32])
    graph = helper.make_graph([node], "g", [x], [y], initializer=list(initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for key, value in base.items():
        model.metadata_props.add(key=META_PREFIX + key, value=value)
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path
