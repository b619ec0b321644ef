"""The saliency and merge kernels of plugins/kernels against the PyTorch reference.

Every check runs on two backends of the same kernel source:
- `cuda`: libvidtldr_kernels built for the local GPU, through the ctypes binding
  (vidtldr_deploy.backends.kernels); skipped without a CUDA GPU.
- `emulated`: the source compiled by the host C++ compiler against the CPU emulation of CUDA in
  tests/cuda_emulator (tests/kernel_emulation.py); checks the algorithm (tiling, key splits,
  barriers, tie rules, degenerate cases) on machines without a GPU, not the hardware.

Merges must keep and merge exactly the reference's tokens wherever the inputs have no near-ties.
Saliency is compared with a float64 evaluation of the same formula: the foreground normalisation
divides by the spread of the entropies, which magnifies float32 rounding (the float32 reference is
itself ~2e-5 off at N = 301), so the kernel must be as accurate as the float32 reference up to a
small factor rather than equal to it.
"""

from __future__ import annotations

import ctypes
import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from support import kernel_emulation
from vidtldr_deploy.core.merge import bipartite_merge, plan_merge
from vidtldr_deploy.core.saliency import saliency_from_qk
from vidtldr_deploy.errors import VidTLDRError

MERGE_TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=1e-3, atol=1e-3)}
# Kernel saliency error against float64 <= factor x the float32 reference's own error + atol.
SALIENCY_ERROR_FACTOR = 3.0
SALIENCY_ATOL = 2e-6
# The foreground normalisation divides the row entropies by their spread, so a float32 rounding of
# the entropies (about eps32 x their size) reaches the score multiplied by max|e| / spread. With few
# rows the float32 reference's own error is a single, sometimes lucky, sample of that; the bound
# never goes below a few roundings of the entropies carried through the normalisation.
EPS32 = float(torch.finfo(torch.float32).eps)
SALIENCY_ROUNDINGS = 8.0


class CudaKernels:
    device = "cuda"

    def __init__(self, library) -> None:
        from vidtldr_deploy.runtime import kernels as kmod

        self._kmod, self._library = kmod, library

    def saliency(self, q, k, scale):
        return self._kmod.saliency(q, k, scale, library=self._library)

    def merge(self, x, size, score, r):
        return self._kmod.merge(x, size, score, r, library=self._library)


@pytest.fixture(scope="session")
def cuda_kernels(tmp_path_factory: pytest.TempPathFactory) -> CudaKernels:
    if not torch.cuda.is_available():
        pytest.skip(
            "needs a CUDA GPU (torch.cuda.is_available() is False); the emulated backend covers the logic"
        )
    from vidtldr_deploy.runtime import plugin_build

    if os.environ.get(plugin_build.ENV_PLUGIN_DIR):
        return CudaKernels(plugin_build.find_kernel_library())
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake to build the kernels (or set VIDTLDR_PLUGIN_DIR)")
    major, minor = torch.cuda.get_device_capability()
    build = tmp_path_factory.mktemp("kernels-gpu")
    return CudaKernels(
        plugin_build.build_plugins(build_dir=build, cuda_archs=f"{major}{minor}")["kernels"]
    )


@pytest.fixture(scope="session")
def emulated_kernels(tmp_path_factory: pytest.TempPathFactory) -> kernel_emulation.EmulatedKernels:
    compiler = kernel_emulation.host_compiler()
    if compiler is None:
        pytest.skip(
            "needs a host C++ compiler with _Float16 (g++ >= 12 or clang++ >= 15) for the CUDA emulation"
        )
    return kernel_emulation.EmulatedKernels(
        kernel_emulation.build(tmp_path_factory.mktemp("kernels-emulated"), compiler)
    )


@pytest.fixture(params=[pytest.param("cuda", marks=pytest.mark.gpu), "emulated"])
def kernels(request: pytest.FixtureRequest):
    backend = request.getfixturevalue(f"{request.param}_kernels")
    if request.param == "emulated":
        backend.configure(seed=1, sm_count=4)
    return backend


def _gen(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# --------------------------------------------------------------------------------------------- saliency


def _entropy_amplification(q: torch.Tensor, k: torch.Tensor, scale: float) -> float:
    """max over samples of max|e| / (max e - min e): how much the normalisation magnifies an error
    in the row entropies e (1 where a sample's rows are all alike, which the kernel special-cases)."""
    attn = torch.softmax((q.double() * scale) @ k.double().transpose(-2, -1), dim=-1).mean(dim=1)
    e = torch.where(attn > 0, attn * attn.log(), torch.zeros_like(attn)).sum(dim=-1)
    span = e.amax(dim=-1) - e.amin(dim=-1)
    size = e.abs().amax(dim=-1)
    ratio = torch.where(
        span > 0, size / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(span)
    )
    return float(ratio.max())


def _saliency_float64(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """saliency_from_qk's formula evaluated in float64 (on the float32 values of q, k)."""
    attn = torch.softmax((q.double() * scale) @ k.double().transpose(-2, -1), dim=-1).mean(dim=1)
    e = torch.where(attn > 0, attn * attn.log(), torch.zeros_like(attn)).sum(dim=-1)
    s = e - e.amin(dim=-1, keepdim=True)
    span = s.amax(dim=-1, keepdim=True)
    s = s / torch.where(span > 0, span, torch.ones_like(span))
    mean = s.mean(dim=-1, keepdim=True)
    background = s < mean
    s = s - mean
    peak = s.amax(dim=-1, keepdim=True)
    s = torch.where(
        background, torch.zeros_like(s), s / torch.where(peak > 0, peak, torch.ones_like(peak))
    )
    return torch.where(span > 0, s, torch.ones_like(s))


def _check_saliency(kernels, q: torch.Tensor, k: torch.Tensor, scale: float) -> None:
    B, _, N, _ = q.shape
    got = kernels.saliency(q, k, scale)
    assert got.shape == (B, N) and got.dtype == torch.float32
    assert torch.isfinite(got).all()
    exact = _saliency_float64(q, k, scale)
    reference_error = (saliency_from_qk(q, k, scale).double() - exact).abs().max().item()
    kernel_error = (got.double() - exact).abs().max().item()
    conditioning = SALIENCY_ROUNDINGS * EPS32 * _entropy_amplification(q.float(), k.float(), scale)
    bound = max(SALIENCY_ERROR_FACTOR * reference_error, conditioning) + SALIENCY_ATOL
    assert kernel_error <= bound, (
        f"saliency max error {kernel_error:.3g} against float64 exceeds {bound:.3g} "
        f"({SALIENCY_ERROR_FACTOR}x the float32 reference's {reference_error:.3g} + {SALIENCY_ATOL})"
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    "B,H,N,D",
    [
        (1, 3, 37, 64),
        (3, 2, 129, 40),
        (1, 12, 301, 64),
        (3, 4, 64, 72),
        (1, 1, 1, 16),
        (2, 2, 50, 33),
    ],
)
def test_saliency_matches_reference(kernels, dtype, B, H, N, D) -> None:
    g = _gen(kernels.device, N * 7 + D)
    q = torch.randn(B, H, N, D, device=kernels.device, generator=g).to(dtype)
    k = torch.randn(B, H, N, D, device=kernels.device, generator=g).to(dtype)
    _check_saliency(kernels, q, k, D**-0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_saliency_sharp_attention(kernels, dtype) -> None:
    # Large logits: rows far from uniform, so the entropies spread widely (exercises the max/sum path).
    g = _gen(kernels.device, 3)
    q = (3 * torch.randn(2, 4, 150, 32, device=kernels.device, generator=g)).to(dtype)
    k = (3 * torch.randn(2, 4, 150, 32, device=kernels.device, generator=g)).to(dtype)
    _check_saliency(kernels, q, k, 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_saliency_constant_attention_scores_one(kernels, dtype) -> None:
    dev = kernels.device
    # q = 0: every attention row is uniform -> constant entropies -> every token scores 1.
    k = torch.randn(3, 2, 77, 64, device=dev, generator=_gen(dev, 5)).to(dtype)
    q = torch.zeros_like(k)
    assert torch.equal(kernels.saliency(q, k, 0.125), torch.ones(3, 77, device=dev))
    # Identical keys: each row has equal logits (different per row), again uniform rows.
    q = torch.randn(3, 2, 77, 64, device=dev, generator=_gen(dev, 6)).to(dtype)
    k = (
        torch.randn(3, 2, 1, 64, device=dev, generator=_gen(dev, 7))
        .to(dtype)
        .expand(3, 2, 77, 64)
        .contiguous()
    )
    assert torch.equal(kernels.saliency(q, k, 0.125), torch.ones(3, 77, device=dev))


# ------------------------------------------------------------------------------------------------ merge


def _near_ties(x: torch.Tensor, r: int, eps: float = 1e-5) -> bool:
    """True where the reference's choice could flip under fp32 rounding (gaps in (0, eps))."""
    m = x.double()
    n = m.norm(dim=-1, keepdim=True)
    m = torch.where(n > 0, m / torch.where(n > 0, n, torch.ones_like(n)), m)
    sim = (m[:, ::2] @ m[:, 1::2].transpose(-1, -2) + 1) / 2
    if sim.shape[-1] == 0:  # N = 1: nothing to choose between
        return False
    if sim.shape[-1] >= 2:
        top2 = sim.topk(2, dim=-1).values
        gap = top2[..., 0] - top2[..., 1]
        if ((gap > 0) & (gap < eps)).any():
            return True
    best = sim.max(dim=-1).values.sort(dim=-1, descending=True).values
    if 0 < r < best.shape[-1]:
        boundary = best[:, r - 1] - best[:, r]
        if ((boundary > 0) & (boundary < eps)).any():
            return True
    return False


class NoTieFreeDraw(Exception):
    """Every draw had near-ties (few channels, many tokens): the case cannot be compared."""


def _inputs(
    device: str, seed: int, B: int, N: int, C: int, dtype: torch.dtype, r: int, with_size: bool
):
    """Random inputs without near-ties (re-drawn until there are none)."""
    for attempt in range(20):
        g = _gen(device, seed * 100 + attempt)
        x = torch.randn(B, N, C, device=device, generator=g).to(dtype)
        if not _near_ties(x.float(), r):
            break
    else:
        raise NoTieFreeDraw(f"20 draws of ({B}, {N}, {C}) all had near-ties")
    size = (1 + 3 * torch.rand(B, N, device=device, generator=g)) if with_size else None
    score = torch.rand(B, N, device=device, generator=g)
    score[score < 0.3] = 0  # background sources are dropped
    return x, size, score


def _check_merge(kernels, x, size, score, r) -> None:
    got_x, got_size = kernels.merge(x, size, score, r)
    want_x, want_size = bipartite_merge(x, size, score, r)
    B, N, C = x.shape
    assert got_x.shape == (B, N - r, C) and got_x.dtype == x.dtype
    assert got_size.shape == (B, N - r) and got_size.dtype == torch.float32
    assert torch.isfinite(got_x.float()).all() and torch.isfinite(got_size).all()
    if r > 0:
        # The same a-tokens are kept, copied bit-exactly, in ascending order.
        kept = plan_merge(x.float(), r).unmerged
        n_kept = kept.shape[1]
        expected_kept = x[:, ::2].gather(1, kept.unsqueeze(-1).expand(-1, -1, C))
        assert torch.equal(got_x[:, :n_kept], expected_kept)
    torch.testing.assert_close(got_size, want_size, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_x.float(), want_x.float(), **MERGE_TOL[x.dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("N,C", [(101, 64), (257, 48), (9, 770), (2, 16)])
@pytest.mark.parametrize("r_kind", ["zero", "one", "half"])
@pytest.mark.parametrize("with_size", [False, True])
def test_merge_matches_reference(kernels, dtype, B, N, C, r_kind, with_size) -> None:
    r = {"zero": 0, "one": 1, "half": N // 2}[r_kind]
    x, size, score = _inputs(kernels.device, N + C + B, B, N, C, dtype, r, with_size)
    _check_merge(kernels, x, size, score, r)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_merge_umt_layer_shape(kernels, dtype) -> None:
    # The first merge of UMT-B on MSRVTT: N = 2352 tokens, C = 768, r = 600 (more than one pass of
    # the rank, kept and emit loops). Batch 2 on the GPU, 1 in the (slower) emulation.
    B = 2 if kernels.device == "cuda" else 1
    x, size, score = _inputs(kernels.device, 11, B, 2352, 768, dtype, 600, True)
    _check_merge(kernels, x, size, score, 600)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_merge_zero_norm_tokens(kernels, dtype) -> None:
    # Zero rows have cosine 0 (similarity exactly 0.5) with everything: exact ties, broken by index
    # identically in both implementations, and never NaN.
    dev = kernels.device
    g = _gen(dev, 21)
    x = torch.randn(3, 65, 32, device=dev, generator=g).to(dtype)
    x[:, ::3] = 0
    score = torch.rand(3, 65, device=dev, generator=g)
    for r in (1, 10, 32):
        _check_merge(kernels, x, None, score, r)
    x = torch.zeros(2, 31, 8, device=dev, dtype=dtype)
    _check_merge(kernels, x, None, torch.ones(2, 31, device=dev), 15)


def test_merge_rejects_bad_arguments(cuda_kernels) -> None:
    x = torch.randn(1, 11, 8, device="cuda")
    score = torch.rand(1, 11, device="cuda")
    with pytest.raises(VidTLDRError, match="N // 2"):
        cuda_kernels.merge(x, None, score, 6)
    with pytest.raises(VidTLDRError, match="CUDA tensor"):
        cuda_kernels.merge(x.cpu(), None, score, 1)
    with pytest.raises(VidTLDRError, match="same|shape"):
        cuda_kernels.saliency(
            torch.randn(1, 2, 5, 4, device="cuda"), torch.randn(1, 2, 6, 4, device="cuda"), 1.0
        )


# ----------------------------------------------------------------------- emulation only: order, splits, C ABI


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_results_do_not_depend_on_thread_order(emulated_kernels, dtype) -> None:
    # Each seed runs the threads of a block in other orders between barriers: a missing barrier
    # (a shared-memory read racing a write) would change the bits.
    g = _gen("cpu", 31)
    q = torch.randn(2, 3, 150, 40, generator=g).to(dtype)
    k = torch.randn(2, 3, 150, 40, generator=g).to(dtype)
    x, size, score = _inputs("cpu", 32, 2, 301, 96, dtype, 150, True)
    runs = []
    for seed in (1, 2, 3):
        emulated_kernels.configure(seed=seed, sm_count=4)
        runs.append(
            (emulated_kernels.saliency(q, k, 0.2), *emulated_kernels.merge(x, size, score, 150))
        )
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("sm_count", [1, 1000])
def test_key_splits_do_not_change_results(emulated_kernels, sm_count) -> None:
    # The SM count decides how many blocks share a row's keys (1: one split; 1000: one tile each).
    emulated_kernels.configure(seed=1, sm_count=sm_count)
    g = _gen("cpu", 41)
    q = torch.randn(1, 4, 333, 64, generator=g)
    k = torch.randn(1, 4, 333, 64, generator=g)
    _check_saliency(emulated_kernels, q, k, 0.125)
    x, size, score = _inputs("cpu", 42, 1, 333, 64, torch.float32, 160, True)
    _check_merge(emulated_kernels, x, size, score, 160)


# Random shapes, including the smallest (N = 1) and ragged tiles; hypothesis is derandomized so CI
# draws the same cases every run. Merge takes C >= 2: with C = 1 every pair of tokens is parallel,
# so all similarities tie exactly in real arithmetic and each implementation's rounding (the
# reference normalises x before the product, the kernel scales the product by 1 / norms) breaks
# those ties its own way; saliency has no such choice and takes D = 1.
_RANDOM = settings(max_examples=25, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@_RANDOM
@given(
    B=st.integers(1, 3), N=st.integers(1, 150), C=st.integers(2, 80), r_frac=st.floats(0, 1),
    half=st.booleans(), with_size=st.booleans(), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_merge_random_shapes(emulated_kernels, B, N, C, r_frac, half, with_size, seed) -> None:
    emulated_kernels.configure(seed=seed, sm_count=1 + seed % 7)
    r = int(r_frac * (N // 2))
    dtype = torch.float16 if half else torch.float32
    try:
        x, size, score = _inputs("cpu", seed, B, N, C, dtype, r, with_size)
    except NoTieFreeDraw:
        assume(False)
    _check_merge(emulated_kernels, x, size, score, r)


@_RANDOM
@given(B=st.integers(1, 3), H=st.integers(1, 4), N=st.integers(1, 150), D=st.integers(1, 72),
       half=st.booleans(), seed=st.integers(0, 2**16))  # fmt: skip
def test_saliency_random_shapes(emulated_kernels, B, H, N, D, half, seed) -> None:
    emulated_kernels.configure(seed=seed, sm_count=1 + seed % 7)
    g = _gen("cpu", seed)
    dtype = torch.float16 if half else torch.float32
    q = torch.randn(B, H, N, D, generator=g).to(dtype)
    k = torch.randn(B, H, N, D, generator=g).to(dtype)
    _check_saliency(emulated_kernels, q, k, D**-0.5)


def test_c_abi_rejects_bad_arguments(emulated_kernels) -> None:
    lib = emulated_kernels.lib
    x = torch.randn(1, 11, 8)
    score = torch.rand(1, 11)
    out = torch.empty(1, 11, 8)
    size_out = torch.empty(1, 11)
    ws = torch.empty(4096, dtype=torch.uint8)
    p = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731

    def merge(r: int, dtype: int = 0, workspace=ws, x_ptr=p(x)) -> int:
        return lib.vidtldr_merge(x_ptr, None, p(score), p(out), p(size_out), 1, 11, 8, r, dtype,
                                 None if workspace is None else p(workspace), None)  # fmt: skip

    assert merge(5) == 0
    assert merge(6) == 1 and merge(-1) == 1  # r outside [0, N // 2]
    assert merge(1, x_ptr=None) == 1
    assert merge(1, dtype=2) == 2
    assert merge(1, workspace=None) == 4
    assert merge(0, workspace=None) == 0  # r = 0 is a copy and needs no workspace
    assert lib.vidtldr_merge_workspace_size(1, 11, 8, 6) == 0
    q = torch.randn(1, 2, 5, 4)
    status = lib.vidtldr_saliency(p(q), p(q), p(torch.empty(1, 5)), 1, 2, 5, 4, 0.5, 0, None, None)
    assert status == 4  # saliency always needs its workspace
    assert (
        lib.vidtldr_saliency(p(q), p(q), p(torch.empty(1, 5)), 1, 70000, 5, 4, 0.5, 0, p(ws), None)
        == 3
    )
    assert "r outside" in lib.vidtldr_error_string(1).decode()
