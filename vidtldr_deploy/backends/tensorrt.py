"""TensorRT backend: the only module that imports tensorrt (being written with the TensorRT issue)."""

from __future__ import annotations

from vidtldr_deploy.errors import VidTLDRError


def require_tensorrt():
    """Import TensorRT (10 or newer) or say how to get it."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise VidTLDRError(
            "TensorRT is not installed: install it (pip install 'vidtldr-deploy[tensorrt]', or use "
            "NVIDIA's TensorRT container / JetPack) to build engines"
        ) from err
    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise VidTLDRError(
            f"TensorRT {trt.__version__} is too old: TensorRT 10 or newer is required "
            "(8.x miscomputes ScatterElements with a reduction)"
        )
    return trt
