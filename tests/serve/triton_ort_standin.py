"""Test-only Triton Python-backend model: runs the exported model.onnx beside it with ONNX Runtime.

The tests' tritonserver (nvidia-pytriton) has no onnxruntime backend. The fixture copies this file
into a repository written by `vidtldr triton` as NAME/1/model.py and switches NAME's config from
platform onnxruntime_onnx to backend python, inputs, outputs and batching untouched, so requests
still go bytes -> NAME_preprocess -> NAME through Triton's ensemble scheduler. Not shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the test machines have two cores
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {
                n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.inputs
            }
            values = self.session.run(self.outputs, feeds)
            tensors = [
                pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(self.outputs, values)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.session = None
