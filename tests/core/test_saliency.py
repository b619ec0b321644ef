"""Saliency (docs/design.md, "vid-TLDR semantics", saliency(P0)): hand-computed cases and properties.

Expected numbers are derived by hand in the comments; the code under test is never used to make them.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from support import oracle
from vidtldr_deploy.core.saliency import (
    foreground_score,
    neg_entropy_from_attention,
    neg_entropy_from_qk,
    saliency_from_attention,
    saliency_from_qk,
)

SETTINGS = settings(deadline=None, max_examples=25, derandomize=True, database=None)
L2 = math.log(2.0)  # 0.6931472


def _row(n: int, weights: dict[int, float]) -> list[float]:
    row = [0.0] * n
    for j, w in weights.items():
        row[j] = w
    return row


def hand_attention() -> torch.Tensor:
    """(B=1, H=2, N=6, N=6) attention map whose head-mean rows have entropies in multiples of ln 2.

    row | head 0                   | head 1                   | head mean               | e = sum a log a
    0   | one-hot col 0            | one-hot col 0            | (1, 0, 0, 0, 0, 0)      | 1 log 1 + 5 * (0 log 0 := 0) = 0
    1   | one-hot col 0            | one-hot col 1            | (1/2, 1/2, 0, 0, 0, 0)  | 2 * 1/2 log 1/2 = -ln 2
    2   | 1/2 on cols 2, 3         | 1/2 on cols 2, 3         | (0, 0, 1/2, 1/2, 0, 0)  | -ln 2
    3   | 1/4 on cols 0..3         | 1/4 on cols 0..3         | 1/4 on cols 0..3        | 4 * 1/4 log 1/4 = -2 ln 2
    4   | 1/2 on cols 0, 1         | 1/2 on cols 2, 3         | 1/4 on cols 0..3        | -2 ln 2
    5   | 1/4 on cols 2..5         | 1/4 on cols 2..5         | 1/4 on cols 2..5        | -2 ln 2
    """
    n = 6
    h0 = [
        _row(n, {0: 1.0}),
        _row(n, {0: 1.0}),
        _row(n, {2: 0.5, 3: 0.5}),
        _row(n, {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25}),
        _row(n, {0: 0.5, 1: 0.5}),
        _row(n, {2: 0.25, 3: 0.25, 4: 0.25, 5: 0.25}),
    ]
    h1 = [
        _row(n, {0: 1.0}),
        _row(n, {1: 1.0}),
        _row(n, {2: 0.5, 3: 0.5}),
        _row(n, {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25}),
        _row(n, {2: 0.5, 3: 0.5}),
        _row(n, {2: 0.25, 3: 0.25, 4: 0.25, 5: 0.25}),
    ]
    return torch.tensor([[h0, h1]])


def test_hand_case_entropies():
    # e = [0, -ln2, -ln2, -2 ln2, -2 ln2, -2 ln2]; the one-hot row has zeros (0 log 0 := 0, no NaN)
    e = neg_entropy_from_attention(hand_attention())
    expected = torch.tensor([[0.0, -0.6931472, -0.6931472, -1.3862944, -1.3862944, -1.3862944]])
    assert e.dtype == torch.float32
    assert torch.isfinite(e).all()
    torch.testing.assert_close(e, expected, rtol=0, atol=1e-6)


def test_hand_case_scores_and_background():
    # e       = [0, -L, -L, -2L, -2L, -2L]                 (L = ln 2)
    # min-max : (e + 2L) / 2L = [1, 1/2, 1/2, 0, 0, 0]
    # mean    = (1 + 1/2 + 1/2) / 6 = 1/3
    # bg      = e' < 1/3 -> tokens 3, 4, 5
    # e' - 1/3 = [2/3, 1/6, 1/6, -1/3, -1/3, -1/3]; max = 2/3
    # / max   = [1, 1/4, 1/4, -1/2, -1/2, -1/2]; background -> 0
    s = saliency_from_attention(hand_attention())
    expected = torch.tensor([[1.0, 0.25, 0.25, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(s, expected, rtol=0, atol=1e-6)


def test_foreground_score_from_given_entropies_odd_n():
    # N = 7, e = [-3, -1, -2, -3, 0, -3, -2]
    # min-max: (e + 3) / 3 = [0, 2/3, 1/3, 0, 1, 0, 1/3]; mean = (2/3 + 1/3 + 1 + 1/3) / 7 = (7/3) / 7 = 1/3
    # bg = e' < 1/3 -> tokens 0, 3, 5 (tokens 2 and 6 sit exactly on the mean: not background, score 0)
    # e' - 1/3 = [-1/3, 1/3, 0, -1/3, 2/3, -1/3, 0]; max = 2/3 -> [-1/2, 1/2, 0, -1/2, 1, -1/2, 0]
    e = torch.tensor([[-3.0, -1.0, -2.0, -3.0, 0.0, -3.0, -2.0]])
    expected = torch.tensor([[0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(foreground_score(e), expected, rtol=0, atol=1e-6)


def test_single_peak_keeps_only_that_token():
    # e = [-1, -1, 0, -1, -1, -1]: e' = [0, 0, 1, 0, 0, 0], mean 1/6, all but token 2 background;
    # token 2: (1 - 1/6) / (5/6) = 1
    e = torch.tensor([[-1.0, -1.0, 0.0, -1.0, -1.0, -1.0]])
    assert foreground_score(e).tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]


def test_constant_entropy_scores_one():
    # every row uniform over N = 6 -> e_i = -ln 6 for all i: no evidence of background -> all 1
    attn = torch.full((2, 3, 6, 6), 1.0 / 6.0)
    s = saliency_from_attention(attn)
    assert s.tolist() == [[1.0] * 6, [1.0] * 6]
    # a constant e given directly, and a single token (max - min = 0 as well)
    assert foreground_score(torch.full((1, 5), -2.5)).tolist() == [[1.0] * 5]
    assert foreground_score(torch.tensor([[0.3]])).tolist() == [[1.0]]


def test_constant_sample_next_to_normal_sample():
    # the constant rule is per sample: sample 0 constant -> ones; sample 1 = the hand case above
    e = torch.tensor([[-4.0] * 6, [0.0, -L2, -L2, -2 * L2, -2 * L2, -2 * L2]])
    expected = torch.tensor([[1.0] * 6, [1.0, 0.25, 0.25, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(foreground_score(e), expected, rtol=0, atol=1e-6)


def test_qk_zero_queries_give_uniform_attention():
    # q = 0 -> every logit 0 -> softmax uniform -> constant entropy -> all scores 1
    q = torch.zeros(2, 4, 7, 8)
    k = torch.randn(2, 4, 7, 8)
    assert saliency_from_qk(q, k, 0.35).tolist() == [[1.0] * 7] * 2


def test_qk_hand_case():
    # H = 1, N = 3, D = 1, scale = ln 3; q = [1, 0, 0], k = [1, 0, 0]
    # logits row 0: ln3 * [1, 0, 0] -> exp: [3, 1, 1] / 5 = [0.6, 0.2, 0.2]
    # rows 1, 2: all 0 -> uniform [1/3, 1/3, 1/3]
    # e_0 = 0.6 ln 0.6 + 2 * 0.2 ln 0.2 = -0.3064954 - 0.6437752 = -0.9502705
    # e_1 = e_2 = -ln 3 = -1.0986123
    # min-max: [1, 0, 0]; mean 1/3; bg = tokens 1, 2; token 0: (1 - 1/3) / (2/3) = 1
    q = torch.tensor([[[[1.0], [0.0], [0.0]]]])
    k = q.clone()
    e = neg_entropy_from_qk(q, k, math.log(3.0))
    torch.testing.assert_close(
        e, torch.tensor([[-0.9502705, -1.0986123, -1.0986123]]), rtol=0, atol=1e-6
    )
    assert saliency_from_qk(q, k, math.log(3.0)).tolist() == [[1.0, 0.0, 0.0]]


def test_fp16_attention_gives_fp32_scores():
    a16 = hand_attention().half()
    s = saliency_from_attention(a16)
    assert s.dtype == torch.float32
    torch.testing.assert_close(
        s, torch.tensor([[1.0, 0.25, 0.25, 0.0, 0.0, 0.0]]), rtol=0, atol=1e-3
    )


# ----------------------------------------------------------------------------------------------
# Properties


def official_objective_score(attn: torch.Tensor) -> torch.Tensor:
    """The published `get_objective_score`, as written: (B, H, N, N) -> (B, N), no NaN guards."""
    return oracle.objective_score(attn, guard_nan=False)


def _qk(seed: int, b: int, h: int, n: int, d: int, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g) * spread
    k = torch.randn(b, h, n, d, generator=g) * spread
    return q, k


shapes = st.tuples(
    st.integers(1, 3),  # B
    st.integers(1, 4),  # H
    st.integers(2, 24),  # N
    st.integers(1, 16),  # D
)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), spread=st.sampled_from([0.3, 1.0, 3.0]))
def test_scores_are_finite_in_unit_interval(shape, seed, spread):
    b, h, n, d = shape
    q, k = _qk(seed, b, h, n, d, spread)
    s = saliency_from_qk(q, k, d**-0.5)
    assert s.shape == (b, n) and s.dtype == torch.float32
    assert torch.isfinite(s).all()
    assert (s >= 0).all() and (s <= 1).all()
    # the most salient (lowest-entropy) token of every sample scores exactly 1
    assert (s.amax(dim=-1) == 1).all()


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_matches_official_objective_score(shape, seed):
    b, h, n, d = shape
    q, k = _qk(seed, b, h, n, d)
    attn = torch.softmax((q * d**-0.5) @ k.transpose(-1, -2), dim=-1)
    ref = official_objective_score(attn)
    finite = torch.isfinite(ref).all(dim=-1)
    got = saliency_from_attention(attn)
    torch.testing.assert_close(got[finite], ref[finite], rtol=0, atol=1e-5)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), spread=st.sampled_from([0.5, 1.0, 2.0]))
def test_qk_equals_attention_path(shape, seed, spread):
    b, h, n, d = shape
    q, k = _qk(seed, b, h, n, d, spread)
    scale = d**-0.5
    attn = torch.softmax(scale * (q @ k.transpose(-1, -2)), dim=-1)
    e = neg_entropy_from_attention(attn)
    # entropies agree to fp32 rounding; scores too wherever the normalisation does not amplify it
    torch.testing.assert_close(neg_entropy_from_qk(q, k, scale), e, rtol=1e-5, atol=1e-5)
    span = (e.amax(-1) - e.amin(-1)).min().item()
    if span > 1e-2:
        torch.testing.assert_close(
            saliency_from_qk(q, k, scale), saliency_from_attention(attn), rtol=0, atol=1e-4
        )


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), chunk=st.integers(0, 30))
def test_chunked_equals_unchunked(shape, seed, chunk):
    b, h, n, d = shape
    q, k = _qk(seed, b, h, n, d)
    full = neg_entropy_from_qk(q, k, 0.5)
    torch.testing.assert_close(neg_entropy_from_qk(q, k, 0.5, chunk=chunk), full, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        saliency_from_qk(q, k, 0.5, chunk=chunk), saliency_from_qk(q, k, 0.5), rtol=0, atol=1e-5
    )


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_custom_op_equals_function(shape, seed):
    import vidtldr_deploy.core.ops  # noqa: F401  (registers torch.ops.vidtldr.*)

    b, h, n, d = shape
    q, k = _qk(seed, b, h, n, d)
    out = torch.ops.vidtldr.saliency(q, k, 0.25)
    assert out.dtype == torch.float32 and out.shape == (b, n)
    torch.testing.assert_close(out, saliency_from_qk(q, k, 0.25), rtol=0, atol=0)


def test_custom_op_opcheck():
    import vidtldr_deploy.core.ops  # noqa: F401

    q, k = _qk(0, 2, 3, 9, 4)
    torch.library.opcheck(torch.ops.vidtldr.saliency.default, (q, k, 0.5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_qk_returns_fp32(dtype):
    q, k = _qk(3, 1, 2, 10, 8)
    s = saliency_from_qk(q.to(dtype), k.to(dtype), 8**-0.5)
    assert s.dtype == torch.float32 and torch.isfinite(s).all()
