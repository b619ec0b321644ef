"""What each runtime can use on this machine, checked before any work, and the environment that
every report records."""

from __future__ import annotations

import os
import platform

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import DEVICES, RUNTIMES
from vidtldr_deploy.errors import EnvironmentProblem, InputError


def check_device(runtime: str, device: str) -> None:
    """Refuse a device the runtime cannot use here, saying what to install or choose instead."""
    import torch

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "openvino":  # OpenVINO's own device names, refused by name where absent
        from vidtldr_deploy.runtime.openvino import openvino_device

        openvino_device(device)
        return
    if device not in DEVICES:
        raise InputError(f"--device must be cpu or cuda, got {device!r}")
    if runtime == "torch" and device == "cuda" and not torch.cuda.is_available():
        build = (
            "a CPU-only build"
            if torch.version.cuda is None
            else f"built for CUDA {torch.version.cuda}"
        )
        raise EnvironmentProblem(
            f"--device cuda: PyTorch sees no CUDA device (torch {torch.__version__}, {build}); "
            "run on a machine with an NVIDIA GPU and a CUDA build of PyTorch, or use --device cpu"
        )
    if runtime == "onnxruntime" and device == "cuda":
        import onnxruntime as ort

        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            raise EnvironmentProblem(
                f"--runtime onnxruntime --device cuda needs the CUDA execution provider, but this "
                f"ONNX Runtime has only {', '.join(available)}: install onnxruntime-gpu "
                "(pip install 'vidtldr-deploy[gpu]') or use --device cpu"
            )
    if runtime == "tensorrt":
        if device != "cuda":
            raise InputError("--runtime tensorrt runs on the GPU only: use --device cuda")
        from vidtldr_deploy.runtime.tensorrt.environment import require_tensorrt

        require_tensorrt()


def environment(device: str) -> dict:
    """Versions and hardware a measurement was taken on."""
    import torch

    env = {
        "toolkit_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
    except ImportError:
        pass
    try:
        import openvino

        env["openvino"] = openvino.__version__
    except ImportError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    return env
