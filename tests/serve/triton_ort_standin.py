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
        """The requests the dynamic batcher grouped run as ONE batch, as Triton's onnxruntime
        backend runs them (a static-batch model gets one request at a time)."""
        feeds = {
            n: [pb_utils.get_input_tensor_by_name(r, n).as_numpy() for r in requests]
            for n in self.inputs
        }
        sizes = [len(a) for a in feeds[self.inputs[0]]]
        values = self.session.run(
            self.outputs, {n: np.concatenate(arrays) for n, arrays in feeds.items()}
        )
        responses, start = [], 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(n, np.ascontiguousarray(v[start : start + size]))
                for n, v in zip(self.outputs, values)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses

    def finalize(self):
        self.session = None
