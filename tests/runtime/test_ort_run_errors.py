"""An ONNX Runtime failure while running a graph is a named error, not a traceback."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vidtldr_deploy.errors import VidTLDRError

pytest.importorskip("onnxruntime")


def test_runtime_failure_names_the_graph(tmp_path):
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    x = helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None)
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [7])  # 3 values cannot become 7
    graph = helper.make_graph([helper.make_node("Reshape", ["video", "shape"], ["pooled"])], "g",
                              [x], [y], initializer=[shape])  # fmt: skip
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with OnnxRuntimeRunner(path) as runner:
        with pytest.raises(VidTLDRError, match=f"ONNX Runtime failed running {path}"):
            runner.run(np.zeros((1, 3), np.float32))
