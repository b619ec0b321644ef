"""ctypes binding of libvidtldr_kernels for PyTorch CUDA tensors.

The same CUDA kernels the TensorRT plugins run (plugins/kernels/vidtldr_kernels.h), callable on
torch tensors for testing and benchmarking against the PyTorch reference
(vidtldr_deploy.core.saliency.saliency_from_qk, vidtldr_deploy.core.merge.bipartite_merge).
Outputs and workspace are allocated with torch on the inputs' device and the kernels are enqueued
on torch's current stream, so calls compose with surrounding torch work without synchronising.
Importing this module needs neither CUDA nor the library; the library is loaded on first use.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import torch

from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure
from vidtldr_deploy.runtime.plugin_build import find_kernel_library

_DTYPES = {torch.float32: 0, torch.float16: 1}
_EXPECTED_ABI = 1

_lock = threading.Lock()
_loaded: dict[Path, ctypes.CDLL] = {}


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    c_int, c_float, c_size_t, c_void_p = (
        ctypes.c_int,
        ctypes.c_float,
        ctypes.c_size_t,
        ctypes.c_void_p,
    )
    lib.vidtldr_abi_version.argtypes = []
    lib.vidtldr_abi_version.restype = c_int
    lib.vidtldr_error_string.argtypes = [c_int]
    lib.vidtldr_error_string.restype = ctypes.c_char_p
    lib.vidtldr_saliency_workspace_size.argtypes = [c_int] * 4
    lib.vidtldr_saliency_workspace_size.restype = c_size_t
    lib.vidtldr_saliency.argtypes = (
        [c_void_p, c_void_p, c_void_p] + [c_int] * 4 + [c_float, c_int, c_void_p, c_void_p]
    )
    lib.vidtldr_saliency.restype = c_int
    lib.vidtldr_merge_workspace_size.argtypes = [c_int] * 4
    lib.vidtldr_merge_workspace_size.restype = c_size_t
    lib.vidtldr_merge.argtypes = [c_void_p] * 5 + [c_int] * 5 + [c_void_p, c_void_p]
    lib.vidtldr_merge.restype = c_int
    return lib


def load_library(path: Path | str | None = None) -> ctypes.CDLL:
    """Load libvidtldr_kernels (explicit path, $VIDTLDR_PLUGIN_DIR, or plugins/build), once per file."""
    resolved = find_kernel_library(path)
    with _lock:
        lib = _loaded.get(resolved)
        if lib is None:
            try:
                lib = _declare(ctypes.CDLL(str(resolved)))
            except (OSError, AttributeError) as exc:
                raise EnvironmentProblem(
                    f"could not load {resolved}: {exc}; rebuild it with `vidtldr build-plugins`"
                ) from exc
            abi = lib.vidtldr_abi_version()
            if abi != _EXPECTED_ABI:
                raise EnvironmentProblem(
                    f"{resolved} has kernel ABI {abi}, this package expects {_EXPECTED_ABI}; "
                    "rebuild it with `vidtldr build-plugins`"
                )
            _loaded[resolved] = lib
    return lib


def _check_cuda(name: str, t: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_cuda:
        raise InputError(f"{name} must be a CUDA tensor (the vid-TLDR kernels run on the GPU)")
    if t.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise InputError(f"{name} must be {names}, got {str(t.dtype).replace('torch.', '')}")


def _raise_on_error(lib: ctypes.CDLL, status: int, op: str) -> None:
    if status != 0:
        message = lib.vidtldr_error_string(status).decode()
        raise RuntimeFailure(f"vid-TLDR {op} kernel failed: {message} (code {status})")


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr() if t is not None and t.numel() > 0 else None)


def saliency(
    q: torch.Tensor, k: torch.Tensor, scale: float, library: Path | str | None = None
) -> torch.Tensor:
    """Foreground score (B, N) fp32 from q, k (B, H, N, D) fp32/fp16: `vidtldr::Saliency`."""
    _check_cuda("q", q, tuple(_DTYPES))
    _check_cuda("k", k, (q.dtype,))
    if q.dim() != 4 or q.shape != k.shape or q.device != k.device:
        raise InputError(
            f"q and k must share one (B, H, N, D) shape and device, got {tuple(q.shape)}, {tuple(k.shape)}"
        )
    lib = load_library(library)
    B, H, N, D = (int(s) for s in q.shape)
    q, k = q.contiguous(), k.contiguous()
    score = torch.empty((B, N), dtype=torch.float32, device=q.device)
    if score.numel() == 0:
        return score
    with torch.cuda.device(q.device):
        workspace = torch.empty(
            int(lib.vidtldr_saliency_workspace_size(B, H, N, D)), dtype=torch.uint8, device=q.device
        )
        stream = ctypes.c_void_p(torch.cuda.current_stream(q.device).cuda_stream)
        status = lib.vidtldr_saliency(
            _ptr(q),
            _ptr(k),
            _ptr(score),
            B,
            H,
            N,
            D,
            float(scale),
            _DTYPES[q.dtype],
            _ptr(workspace),
            stream,
        )
    _raise_on_error(lib, status, "saliency")
    return score


def merge(
    x: torch.Tensor,
    size: torch.Tensor | None,
    score: torch.Tensor,
    r: int,
    library: Path | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge r tokens: x (B, N, C) fp32/fp16, size (B, N) or None, score (B, N) -> (x', size').

    Same contract as vidtldr_deploy.core.merge.bipartite_merge (without class-token handling):
    x' (B, N - r, C) in x's dtype, size' (B, N - r) fp32; r is a resolved count in [0, N // 2].
    """
    _check_cuda("x", x, tuple(_DTYPES))
    if x.dim() != 3:
        raise InputError(f"x must be (B, N, C), got {tuple(x.shape)}")
    B, N, C = (int(s) for s in x.shape)
    r = int(r)
    if not 0 <= r <= N // 2:
        raise InputError(
            f"r = {r} is outside [0, N // 2] = [0, {N // 2}]; resolve and clamp it first"
        )
    _check_cuda("score", score, (torch.float32, torch.float16, torch.bfloat16))
    if tuple(score.shape) != (B, N) or score.device != x.device:
        raise InputError(f"score must be (B, N) = {(B, N)} on {x.device}, got {tuple(score.shape)}")
    if size is not None:
        _check_cuda("size", size, (torch.float32, torch.float16, torch.bfloat16))
        if tuple(size.shape) != (B, N) or size.device != x.device:
            raise InputError(
                f"size must be (B, N) = {(B, N)} on {x.device}, got {tuple(size.shape)}"
            )
        size = size.float().contiguous()
    lib = load_library(library)
    x = x.contiguous()
    score = score.float().contiguous()
    x_out = torch.empty((B, N - r, C), dtype=x.dtype, device=x.device)
    size_out = torch.empty((B, N - r), dtype=torch.float32, device=x.device)
    if x.numel() == 0:
        return x_out, size_out
    with torch.cuda.device(x.device):
        workspace = torch.empty(
            int(lib.vidtldr_merge_workspace_size(B, N, C, r)), dtype=torch.uint8, device=x.device
        )
        stream = ctypes.c_void_p(torch.cuda.current_stream(x.device).cuda_stream)
        status = lib.vidtldr_merge(
            _ptr(x),
            _ptr(size),
            _ptr(score),
            _ptr(x_out),
            _ptr(size_out),
            B,
            N,
            C,
            r,
            _DTYPES[x.dtype],
            _ptr(workspace),
            stream,
        )
    _raise_on_error(lib, status, "merge")
    return x_out, size_out
