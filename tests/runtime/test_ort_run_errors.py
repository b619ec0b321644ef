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


def test_runners_open_on_entering_not_on_constructing(tmp_path):
    """A runner records what to run; the session opens (and fails) when the block is entered, and
    a runner used outside its block says so instead of running half-open."""
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner
    from vidtldr_deploy.runtime.pytorch import TorchRunner
    from vidtldr_deploy.runtime.tensorrt.runner import TensorRTRunner

    path = tmp_path / "not-a-graph.onnx"
    path.write_bytes(b"not protobuf")
    runner = OnnxRuntimeRunner(path)  # nothing is read yet
    with pytest.raises(RuntimeError, match="not active"):
        runner.run(np.zeros((1, 3), np.float32))
    with pytest.raises(VidTLDRError, match="ONNX Runtime could not load"), runner:
        pass
    TensorRTRunner(tmp_path / "absent.plan")  # no TensorRT, no file: constructing still works

    from support.tiny_models import tiny_model

    model = tiny_model()
    video = np.zeros((1, 3, model.frames, model.cfg.img_size, model.cfg.img_size), np.float32)
    torch_runner = TorchRunner(model, [0] * model.cfg.depth)
    assert torch_runner.model is None  # the private copy is made on entering
    with torch_runner:
        assert torch_runner.model is not model
        assert set(torch_runner.run(video)) == set(model.output_names)
    with pytest.raises(RuntimeError, match="not active"):
        torch_runner.run(video)
