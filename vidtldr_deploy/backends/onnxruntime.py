"""ONNX Runtime runner: one session, one static input, outputs by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidtldr_deploy.errors import VidTLDRError

DEVICE_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}


class OnnxRuntimeRunner:
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", profile_prefix: str | None = None):
        import onnxruntime as ort

        if device not in DEVICE_PROVIDERS:
            raise VidTLDRError(f"--device must be cpu or cuda for onnxruntime, got {device!r}")
        providers = DEVICE_PROVIDERS[device]
        if providers[0] not in ort.get_available_providers():
            raise VidTLDRError(
                f"ONNX Runtime has no {providers[0]} here (available: "
                f"{', '.join(ort.get_available_providers())}): install onnxruntime-gpu "
                f"(pip install 'vidtldr-deploy[gpu]') for --device cuda"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # ORT raises its own exception types per failure
            raise VidTLDRError(f"ONNX Runtime could not load {path}: {err}") from err
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        if tuple(video.shape) != self.input_shape:
            raise VidTLDRError(
                f"input shape {tuple(video.shape)} does not match the graph's static input "
                f"{self.input_shape}"
            )
        outputs = self.session.run(None, {self.input_name: video.astype(np.float32)})
        return dict(zip(self.output_names, outputs))

    def end_profiling(self) -> str | None:
        return self.session.end_profiling()
