"""The fast GPU path in PyTorch: CUDA implementations of the `vidtldr::saliency` and `vidtldr::merge`
torch custom ops (core/ops.py) that call the streaming CUDA kernels (backends/kernels.py), so a
model run with `merge_impl="custom_op"` keeps its attention fused (SDPA) and never materialises an
N x N attention map or the (N/2) x (N/2) similarity matrix (docs/design.md, "Speed").

Where the kernel library is not available (not built, no GPU driver, an input dtype the kernels do
not take, such as bfloat16) the CUDA implementations fall back to the reference maths, which gives
the same numbers, only slower; `status()` says which path is in use and why.

Usage, eager or torch.compile (the ops have fake implementations, so they compile to one opaque
call each and the rest of the block is compiled around them):

    from vidtldr_deploy.runtime import torch_cuda_ops
    torch_cuda_ops.use_fast_path(model, schedule.rs)      # registers the CUDA kernels
    model = torch.compile(model.cuda().half())
"""

from __future__ import annotations

import contextlib
import threading
import warnings

import torch

from vidtldr_deploy.core import ops  # noqa: F401  (defines the vidtldr:: ops this module extends)
from vidtldr_deploy.core.merge import bipartite_merge
from vidtldr_deploy.core.saliency import saliency_from_qk

KERNEL_DTYPES = (torch.float32, torch.float16)  # what the C ABI takes (vidtldr_kernels.h)

_lock = threading.Lock()
_state = {
    "registered": False,
    "kernels": None,  # the backends.kernels module once it loaded
    "checked": False,
    "verified": False,  # a kernel call has succeeded: from then on errors propagate
    "reason": "not checked yet",
    "force_reference": False,
}


def _load_kernels():
    """backends.kernels if its library loads, else None with the reason recorded."""
    if _state["checked"]:
        return _state["kernels"]
    with _lock:
        if _state["checked"]:
            return _state["kernels"]
        try:
            from vidtldr_deploy.runtime import kernels
        except Exception as err:  # missing module, or the library failed to load at import
            _state["reason"] = f"vidtldr_deploy.runtime.kernels unavailable: {err}"
            kernels = None
        if kernels is not None:
            try:
                kernels.load_library()  # $VIDTLDR_PLUGIN_DIR or plugins/build (vidtldr build-plugins)
                _state["reason"] = "CUDA kernels (backends.kernels)"
            except Exception as err:  # VidTLDRError: not built / wrong ABI; OSError: no driver
                _state["reason"] = f"kernel library not available ({err})"
                kernels = None
        _state["kernels"] = kernels
        _state["checked"] = True
        return kernels


def _give_up(err: Exception) -> None:
    """First call failed before any kernel ever ran: treat the library as absent, say so once."""
    _state["kernels"] = None
    _state["reason"] = f"kernel call failed, using the reference maths: {err}"
    warnings.warn(
        f"vidtldr CUDA kernels unusable ({err}); falling back to the reference maths", stacklevel=3
    )


def _kernels_for(*tensors: torch.Tensor):
    if _state["force_reference"]:
        return None
    if any(t.dtype not in KERNEL_DTYPES for t in tensors[:1]):
        return None
    return _load_kernels()


def _call(fn, *args):
    """Run a kernel; before the first success any failure means 'library unusable' (None)."""
    try:
        out = fn(*args)
    except Exception as err:
        if _state["verified"]:
            raise
        _give_up(err)
        return None
    _state["verified"] = True
    return out


def saliency_cuda(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """vidtldr::saliency on CUDA: the two-pass streaming kernel, or the reference maths."""
    kern = _kernels_for(q)
    if kern is not None and q.dtype == k.dtype:
        out = _call(kern.saliency, q.contiguous(), k.contiguous(), float(scale))
        if out is not None:
            return out
    return saliency_from_qk(q, k, scale)


def merge_cuda(
    x: torch.Tensor, size: torch.Tensor, score: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """vidtldr::merge on CUDA: the one-pass gather/scatter kernel, or the reference maths.

    Outputs never alias inputs (a custom-op rule), r = 0 included."""
    if r <= 0:
        return x.clone(), size.float().clone()
    kern = _kernels_for(x)
    if kern is not None:
        out = _call(
            kern.merge,
            x.contiguous(),
            size.float().contiguous(),
            score.float().contiguous(),
            int(r),
        )
        if out is not None:
            x_out, size_out = out
            return x_out, size_out
    x_out, size_out = bipartite_merge(x, size, score, r)
    return x_out.contiguous(), size_out.contiguous()


def register() -> None:
    """Register the CUDA implementations (idempotent; harmless on machines without CUDA)."""
    with _lock:
        if _state["registered"]:
            return
        torch.library.register_kernel("vidtldr::saliency", "cuda", saliency_cuda)
        torch.library.register_kernel("vidtldr::merge", "cuda", merge_cuda)
        _state["registered"] = True


def use_fast_path(model, rs) -> object:
    """Set `model`'s schedule to `rs` with saliency and merge through the custom ops (CUDA kernels
    on CUDA tensors), for eager and torch.compile runs. Returns the model."""
    register()
    return model.set_schedule(list(rs), "custom_op")


@contextlib.contextmanager
def reference_maths():
    """Within the block the CUDA implementations use the reference maths (for A/B benchmarks).

    Eager only: torch.compile'd graphs still call the same op, so this applies to them as well,
    but only while the block is active at call time."""
    saved = _state["force_reference"]
    _state["force_reference"] = True
    try:
        yield
    finally:
        _state["force_reference"] = saved


def status() -> dict:
    """Which implementation CUDA tensors get, and why (for reports)."""
    cuda = torch.cuda.is_available()
    kern = _load_kernels() if cuda else None
    return {
        "registered": _state["registered"],
        "cuda": cuda,
        "kernels": kern is not None,
        "path": ("CUDA kernels" if kern is not None else "reference maths")
        if cuda
        else "CPU: reference maths (custom ops)",
        "reason": _state["reason"] if cuda else "no CUDA device",
    }
