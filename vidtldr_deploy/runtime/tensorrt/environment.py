"""TensorRT on this machine: the version gate, the process-wide logger, and what GPU is here.

The runtime/tensorrt package is the only code that imports tensorrt, always inside a function, so
the toolkit imports without it (docs/design.md, "TensorRT").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from vidtldr_deploy.errors import EnvironmentProblem

MIN_TENSORRT_MAJOR = 10

NOT_INSTALLED = (
    "TensorRT is not installed: install it (pip install 'vidtldr-deploy[tensorrt]', or use "
    "NVIDIA's TensorRT container / JetPack) to build engines"
)
_LOADED_LIBRARIES: dict[str, Any] = {}  # resolved path -> TensorRT library handle (or "ctypes")


def require_tensorrt():
    """Import TensorRT (10 or newer) or say how to get it."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise EnvironmentProblem(NOT_INSTALLED) from err
    major = tensorrt_major(trt)
    if major < MIN_TENSORRT_MAJOR:
        raise EnvironmentProblem(
            f"TensorRT {trt.__version__} is too old: TensorRT 10 or newer is required "
            "(8.x miscomputes ScatterElements with a reduction)"
        )
    return trt


def tensorrt_major(trt) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def is_strongly_typed_only(trt) -> bool:
    """TensorRT 11 removed weak typing (BuilderFlag.FP16 and the precision constraints)."""
    return tensorrt_major(trt) >= 11 or not hasattr(trt.BuilderFlag, "FP16")


def torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise EnvironmentProblem(
            "no CUDA GPU visible to PyTorch: TensorRT engines run on an NVIDIA GPU, and this toolkit "
            "uses PyTorch's CUDA runtime for device buffers (install a CUDA build of PyTorch; on "
            "Jetson, NVIDIA's JetPack wheel)"
        )
    return torch


def gpu_info() -> dict:
    """Name, compute capability and CUDA version of the current GPU (PyTorch first, then
    nvidia-smi); None where unknown."""
    info: dict[str, Any] = {"gpu_name": None, "compute_capability": None, "cuda_version": None}
    try:
        import torch

        info["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            idx = torch.cuda.current_device()
            info["gpu_name"] = torch.cuda.get_device_name(idx)
            info["compute_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(idx))
            return info
    except Exception:  # noqa: BLE001 - any torch/CUDA failure just means "unknown"
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout.strip().splitlines()  # fmt: skip
            if out:
                name, cc = (part.strip() for part in out[0].split(",", 1))
                info["gpu_name"], info["compute_capability"] = name, cc
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return info


_LOGGER = None  # one logger for the process: TensorRT keeps the first one as its global logger


def process_logger(trt):
    """The process-wide TensorRT logger: keeps errors in `.messages` (for failure messages) and
    prints warnings when $VIDTLDR_TRT_VERBOSE is set (2: everything). It is never freed, because
    TensorRT holds on to the first logger it was given."""
    global _LOGGER
    if _LOGGER is None:

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[str] = []

            def log(self, severity, msg):
                verbose = os.environ.get("VIDTLDR_TRT_VERBOSE", "")
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.messages.append(str(msg))
                    if verbose:
                        print(f"[TensorRT] {msg}")
                elif verbose == "2" or (verbose and severity == trt.ILogger.Severity.WARNING):
                    print(f"[TensorRT] {msg}")

        _LOGGER = _Logger()
    _LOGGER.messages = []
    return _LOGGER


def errors_tail(messages: list[str], limit: int = 8) -> str:
    if not messages:
        return ""
    shown = messages[-limit:]
    return "\nTensorRT said:\n" + "\n".join(f"  {m}" for m in shown)
