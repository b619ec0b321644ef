"""CUDA kernels (through the ctypes binding) against the PyTorch reference; needs a CUDA GPU.

Builds libvidtldr_kernels for the local GPU's architecture (or uses $VIDTLDR_PLUGIN_DIR when set)
and compares `saliency` with core.saliency.saliency_from_qk and `merge` with
core.merge.bipartite_merge: fp32 to ~1e-5, fp16 inputs to ~1e-3, and exactly the same tokens kept
and merged wherever the reference has no near-ties.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from vidtldr_deploy.core.merge import bipartite_merge, plan_merge
from vidtldr_deploy.core.saliency import saliency_from_qk
from vidtldr_deploy.errors import VidTLDRError

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=1e-3, atol=1e-3)}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory):
    from vidtldr_deploy.backends import kernels as kmod
    from vidtldr_deploy.backends import plugin_build

    if os.environ.get(plugin_build.ENV_PLUGIN_DIR):
        library = plugin_build.find_kernel_library()
    else:
        if shutil.which("cmake") is None:
            pytest.skip("needs cmake to build the kernels (or set VIDTLDR_PLUGIN_DIR)")
        major, minor = torch.cuda.get_device_capability()
        build = tmp_path_factory.mktemp("kernels-gpu")
        library = plugin_build.build_plugins(build_dir=build, cuda_archs=f"{major}{minor}")["kernels"]

    class Bound:
        saliency = staticmethod(lambda q, k, scale: kmod.saliency(q, k, scale, library=library))
        merge = staticmethod(lambda x, size, score, r: kmod.merge(x, size, score, r, library=library))

    return Bound


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cuda").manual_seed(seed)


# --------------------------------------------------------------------------------------------- saliency


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("B,H,N,D", [(1, 3, 37, 64), (3, 2, 129, 40), (1, 12, 301, 64), (3, 4, 64, 72), (1, 1, 1, 16)])
def test_saliency_matches_reference(kernels, dtype, B, H, N, D) -> None:
    g = _gen(N * 7 + D)
    q = torch.randn(B, H, N, D, device="cuda", generator=g).to(dtype)
    k = torch.randn(B, H, N, D, device="cuda", generator=g).to(dtype)
    scale = D**-0.5
    got = kernels.saliency(q, k, scale)
    want = saliency_from_qk(q, k, scale)
    assert got.shape == (B, N) and got.dtype == torch.float32
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_saliency_sharp_attention(kernels, dtype) -> None:
    # Large logits: rows far from uniform, so the entropies spread widely (exercises the max/lse path).
    g = _gen(3)
    q = (3 * torch.randn(2, 4, 150, 32, device="cuda", generator=g)).to(dtype)
    k = (3 * torch.randn(2, 4, 150, 32, device="cuda", generator=g)).to(dtype)
    torch.testing.assert_close(kernels.saliency(q, k, 0.5), saliency_from_qk(q, k, 0.5), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_saliency_constant_attention_scores_one(kernels, dtype) -> None:
    # q = 0: every attention row is uniform -> constant entropies -> every token scores 1.
    k = torch.randn(3, 2, 77, 64, device="cuda", generator=_gen(5)).to(dtype)
    q = torch.zeros_like(k)
    assert torch.equal(kernels.saliency(q, k, 0.125), torch.ones(3, 77, device="cuda"))
    # Identical keys: each row has equal logits (different per row), again uniform rows.
    q = torch.randn(3, 2, 77, 64, device="cuda", generator=_gen(6)).to(dtype)
    k = torch.randn(3, 2, 1, 64, device="cuda", generator=_gen(7)).to(dtype).expand(3, 2, 77, 64).contiguous()
    assert torch.equal(kernels.saliency(q, k, 0.125), torch.ones(3, 77, device="cuda"))


# ------------------------------------------------------------------------------------------------ merge


def _near_ties(x: torch.Tensor, r: int, eps: float = 1e-5) -> bool:
    """True where the reference's choice could flip under fp32 rounding (gaps in (0, eps))."""
    m = x.double()
    n = m.norm(dim=-1, keepdim=True)
    m = torch.where(n > 0, m / torch.where(n > 0, n, torch.ones_like(n)), m)
    sim = (m[:, ::2] @ m[:, 1::2].transpose(-1, -2) + 1) / 2
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


def _inputs(seed: int, B: int, N: int, C: int, dtype: torch.dtype, r: int, with_size: bool):
    """Random inputs without near-ties (re-drawn until there are none)."""
    for attempt in range(20):
        g = _gen(seed * 100 + attempt)
        x = torch.randn(B, N, C, device="cuda", generator=g).to(dtype)
        if not _near_ties(x.float(), r):
            break
    size = (1 + 3 * torch.rand(B, N, device="cuda", generator=g)) if with_size else None
    score = torch.rand(B, N, device="cuda", generator=g)
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
    torch.testing.assert_close(got_x.float(), want_x.float(), **TOL[x.dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("N,C", [(101, 64), (257, 48), (9, 770), (2, 16)])
@pytest.mark.parametrize("r_kind", ["zero", "one", "half"])
@pytest.mark.parametrize("with_size", [False, True])
def test_merge_matches_reference(kernels, dtype, B, N, C, r_kind, with_size) -> None:
    r = {"zero": 0, "one": 1, "half": N // 2}[r_kind]
    x, size, score = _inputs(N + C + B, B, N, C, dtype, r, with_size)
    _check_merge(kernels, x, size, score, r)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_merge_umt_layer_shape(kernels, dtype) -> None:
    # The first merge of UMT-B on MSRVTT: N = 2352 tokens, C = 768, r = 600.
    x, size, score = _inputs(11, 2, 2352, 768, dtype, 600, True)
    _check_merge(kernels, x, size, score, 600)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_merge_zero_norm_tokens(kernels, dtype) -> None:
    # Zero rows have cosine 0 (similarity exactly 0.5) with everything: exact ties, broken by index
    # identically in both implementations, and never NaN.
    g = _gen(21)
    x = torch.randn(3, 65, 32, device="cuda", generator=g).to(dtype)
    x[:, ::3] = 0
    score = torch.rand(3, 65, device="cuda", generator=g)
    for r in (1, 10, 32):
        _check_merge(kernels, x, None, score, r)
    x = torch.zeros(2, 31, 8, device="cuda", dtype=dtype)
    _check_merge(kernels, x, None, torch.ones(2, 31, device="cuda"), 15)


def test_merge_rejects_bad_arguments(kernels) -> None:
    x = torch.randn(1, 11, 8, device="cuda")
    score = torch.rand(1, 11, device="cuda")
    with pytest.raises(VidTLDRError, match="N // 2"):
        kernels.merge(x, None, score, 6)
    with pytest.raises(VidTLDRError, match="CUDA tensor"):
        kernels.merge(x.cpu(), None, score, 1)
    with pytest.raises(VidTLDRError, match="same|shape"):
        kernels.saliency(torch.randn(1, 2, 5, 4, device="cuda"), torch.randn(1, 2, 6, 4, device="cuda"), 1.0)
