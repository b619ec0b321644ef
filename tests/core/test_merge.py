"""Saliency-weighted bipartite merge (docs/design.md, "vid-TLDR semantics", merge(x, size, s, r)).

Hand-computed cases first (every intermediate written out in the comments, expected numbers as
literals), then hypothesis properties, including equality with a transcription of the published
`merging` + `merge_wavg` restated in this file.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from support import oracle
from vidtldr_deploy.core.merge import bipartite_merge, plan_merge, resolve_r, unit_rows

SETTINGS = settings(deadline=None, max_examples=30, derandomize=True, database=None)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# The 6-token hand case, C = 2.
#
# position : 0       1       2       3       4       5
# role     : a0      b0      a1      b1      a2      b2
# x        : (1,0)   (2,0)   (0,3)   (0,1)   (3,4)   (-1,0)
# unit m   : (1,0)   (1,0)   (0,1)   (0,1)   (.6,.8) (-1,0)
# size     : 2       1       1       3       1       1
# score    : 0.5     0.9     0.0     0.7     1.0     0.2      (only a-scores matter: sources)
#
# cosines a.b       b0     b1     b2          sim = (cos + 1) / 2    b0     b1     b2
#   a0 (1,0)         1      0     -1                           a0    1.0    0.5    0.0
#   a1 (0,1)         0      1      0                           a1    0.5    1.0    0.5
#   a2 (.6,.8)      .6     .8    -.6                           a2    0.8    0.9    0.2
#
# best b per a-token: a0 -> b0 (1.0), a1 -> b1 (1.0), a2 -> b1 (0.9)
# sorted by best, descending, ties by position: a0 (1.0), a1 (1.0), a2 (0.9)
X6 = [[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 1.0], [3.0, 4.0], [-1.0, 0.0]]
SIZE6 = [2.0, 1.0, 1.0, 3.0, 1.0, 1.0]
SCORE6 = [0.5, 0.9, 0.0, 0.7, 1.0, 0.2]


def test_hand_unit_vectors_and_plan():
    m = unit_rows(t([X6]))
    torch.testing.assert_close(
        m, t([[[1, 0], [1, 0], [0, 1], [0, 1], [0.6, 0.8], [-1, 0]]]), rtol=0, atol=1e-7
    )
    plan = plan_merge(t([X6]), r=2)
    assert plan.sources.tolist() == [[0, 1]]  # a0 before a1 (tie at 1.0, first position wins)
    assert plan.destinations.tolist() == [[0, 1]]  # a0 -> b0, a1 -> b1
    assert plan.unmerged.tolist() == [[2]]  # a2 kept
    plan3 = plan_merge(t([X6]), r=3)
    assert plan3.sources.tolist() == [[0, 1, 2]]
    assert plan3.destinations.tolist() == [[0, 1, 1]]  # a2 -> b1 (0.9 beats 0.8 and 0.2)
    assert plan3.unmerged.tolist() == [[]]


def test_hand_r2_background_source_dropped():
    # r = 2: a0 -> b0 (score 0.5, size 2), a1 -> b1 (score 0, background), a2 kept.
    # b0' = (1 * (2,0) + 0.5 * 2 * (1,0)) / (1 + 0.5 * 2) = (3,0) / 2 = (1.5, 0); size 2
    # b1' = (3 * (0,1) + 0 * 1 * (0,3)) / (3 + 0)           = (0, 1);           size 3 (a1 dropped)
    # b2' = (-1, 0); size 1
    # output [a2, b0', b1', b2']; mass 9 -> 7 = 9 - ((1 - 0.5) * 2 + (1 - 0) * 1)
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 2)
    assert x.shape == (1, 4, 2) and size.shape == (1, 4)
    torch.testing.assert_close(x, t([[[3, 4], [1.5, 0], [0, 1], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[1, 2, 3, 1]]), rtol=0, atol=0)


def test_hand_r3_two_sources_into_one_destination():
    # r = 3 = N // 2: a0 -> b0, a1 -> b1, a2 -> b1; nothing kept.
    # b0' = (1.5, 0); size 2 (as above)
    # b1' = (3 * (0,1) + 0 * 1 * (0,3) + 1.0 * 1 * (3,4)) / (3 + 0 + 1) = (3, 7) / 4 = (0.75, 1.75); size 4
    # mass 9 -> 7 = 9 - (1 + 1 + 0)
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 3)
    torch.testing.assert_close(x, t([[[1.5, 0], [0.75, 1.75], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[2, 4, 1]]), rtol=0, atol=0)


def test_hand_r1_tie_broken_by_position():
    # r = 1: a0 and a1 both have best 1.0; the stable descending sort takes a0 (position 0).
    # b0' = (1.5, 0), size 2; kept a1, a2 in original order; b1, b2 untouched.
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 1)
    torch.testing.assert_close(
        x, t([[[0, 3], [3, 4], [1.5, 0], [0, 1], [-1, 0]]]), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(size, t([[1, 1, 2, 3, 1]]), rtol=0, atol=0)


def test_hand_size_none_means_unit_mass():
    # size = 1 everywhere; r = 2
    # b0' = (1 * (2,0) + 0.5 * 1 * (1,0)) / (1 + 0.5) = (2.5, 0) / 1.5 = (1.6666667, 0); size 1.5
    # b1' = (0, 1) (background source dropped); size 1
    x, size = bipartite_merge(t([X6]), None, t([SCORE6]), 2)
    torch.testing.assert_close(x, t([[[3, 4], [1.6666667, 0], [0, 1], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[1, 1.5, 1, 1]]), rtol=0, atol=1e-7)
    assert size.dtype == torch.float32


def test_hand_batch_samples_are_independent():
    # sample 0: the r = 2 case above; sample 1: same tokens, every score 1
    # sample 1: b0' = (1 * (2,0) + 1 * 2 * (1,0)) / (1 + 2) = (4,0) / 3 = (1.3333334, 0); size 3
    #           b1' = (3 * (0,1) + 1 * 1 * (0,3)) / (3 + 1) = (0, 6) / 4 = (0, 1.5);     size 4
    x, size = bipartite_merge(t([X6, X6]), t([SIZE6, SIZE6]), t([SCORE6, [1.0] * 6]), 2)
    expected_x = t(
        [
            [[3, 4], [1.5, 0], [0, 1], [-1, 0]],
            [[3, 4], [1.3333334, 0], [0, 1.5], [-1, 0]],
        ]
    )
    torch.testing.assert_close(x, expected_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[1, 2, 3, 1], [1, 3, 4, 1]]), rtol=0, atol=0)


def test_hand_odd_n_and_first_argmax_destination():
    # N = 7: X6 plus a3 = (0,-2) at position 6, unit (0,-1), size 1, score 1.
    # a3's sims: b0 (0+1)/2 = 0.5, b1 (-1+1)/2 = 0, b2 (0+1)/2 = 0.5 -> tie b0/b2 -> first: b0, best 0.5
    # sorted: a0 (1.0), a1 (1.0), a2 (0.9), a3 (0.5); a has 4 tokens, b has 3.
    x7 = X6 + [[0.0, -2.0]]
    plan = plan_merge(t([x7]), r=3)
    assert plan.sources.tolist() == [[0, 1, 2]]
    assert plan.unmerged.tolist() == [[3]]
    # r = 3 (= 7 // 2): same merges as the 6-token r = 3 case, a3 kept in front
    x, size = bipartite_merge(t([x7]), t([SIZE6 + [1.0]]), t([SCORE6 + [1.0]]), 3)
    torch.testing.assert_close(
        x, t([[[0, -2], [1.5, 0], [0.75, 1.75], [-1, 0]]]), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(size, t([[1, 2, 4, 1]]), rtol=0, atol=0)


def test_hand_first_argmax_decides_destination():
    # N = 4: a0 = (0,1), b0 = (1,0), a1 = (1,1), b1 = (-1,0); size 1, score 1
    # a0: cos to b0 = 0, to b1 = 0 -> sims 0.5, 0.5 -> tie -> b0 (first argmax)
    # a1: unit (0.7071, 0.7071): sims (0.7071 + 1) / 2 = 0.8536 (b0), (1 - 0.7071) / 2 = 0.1464 (b1) -> b0
    # sorted: a1 (0.8536), a0 (0.5); r = 2: both into b0
    # b0' = ((1,0) + (1,1) + (0,1)) / 3 = (2/3, 2/3); size 3.   b1' = (-1, 0); size 1
    x4 = t([[[0, 1], [1, 0], [1, 1], [-1, 0]]])
    plan = plan_merge(x4, r=2)
    assert plan.sources.tolist() == [[1, 0]]
    assert plan.destinations.tolist() == [[0, 0]]
    x, size = bipartite_merge(x4, None, torch.ones(1, 4), 2)
    torch.testing.assert_close(x, t([[[0.6666667, 0.6666667], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[3, 1]]), rtol=0, atol=0)


def test_hand_class_token_never_merges_and_stays_first():
    # class_token=True, r = 2 on the 6-token case: a0 (token 0) is excluded even though it has the
    # best score; sources are a1 (1.0 -> b1) and a2 (0.9 -> b1); a0 kept first.
    # b1' = (3 * (0,1) + 0 * 1 * (0,3) + 1 * 1 * (3,4)) / (3 + 0 + 1) = (0.75, 1.75); size 4
    plan = plan_merge(t([X6]), r=2, class_token=True)
    assert plan.sources.tolist() == [[1, 2]]
    assert plan.destinations.tolist() == [[1, 1]]
    assert plan.unmerged.tolist() == [[0]]
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 2, class_token=True)
    torch.testing.assert_close(x, t([[[1, 0], [2, 0], [0.75, 1.75], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[2, 1, 4, 1]]), rtol=0, atol=0)
    # r = 1: without a class token a0 would win the tie with a1; with one, a1 (score 0) is the
    # source and is dropped: b1' = (0,1), size 3; mass 9 -> 8
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 1, class_token=True)
    torch.testing.assert_close(x, t([[[1, 0], [3, 4], [2, 0], [0, 1], [-1, 0]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[2, 1, 1, 3, 1]]), rtol=0, atol=0)


def test_hand_zero_norm_token_has_cosine_zero():
    # a0 = (0,0) (zero norm), b0 = (1,0), a1 = (2,0), b1 = (0,5); size 1, score 1
    # unit: a0 -> (0,0) (not NaN); sims of a0: (0 + 1) / 2 = 0.5 to both -> b0 (first); a1 -> b0 (1.0)
    # sorted: a1 (1.0), a0 (0.5)
    x0 = t([[[0, 0], [1, 0], [2, 0], [0, 5]]])
    m = unit_rows(x0)
    assert torch.isfinite(m).all()
    torch.testing.assert_close(m, t([[[0, 0], [1, 0], [1, 0], [0, 1]]]), rtol=0, atol=0)
    # r = 1: a1 -> b0: ((1,0) + (2,0)) / 2 = (1.5, 0); size 2
    x, size = bipartite_merge(x0, None, torch.ones(1, 4), 1)
    torch.testing.assert_close(x, t([[[0, 0], [1.5, 0], [0, 5]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[1, 2, 1]]), rtol=0, atol=0)
    # r = 2: both into b0: ((1,0) + (2,0) + (0,0)) / 3 = (1, 0); size 3
    x, size = bipartite_merge(x0, None, torch.ones(1, 4), 2)
    torch.testing.assert_close(x, t([[[1, 0], [0, 5]]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(size, t([[3, 1]]), rtol=0, atol=0)
    # a zero-norm destination: b0 = (0,0): a0 = (1,0) sims 0.5 (b0), 1.0 (b1 = (1,0)) -> b1
    x1 = t([[[1, 0], [0, 0], [0, 1], [1, 0]]])
    plan = plan_merge(x1, r=2)
    assert plan.destinations.tolist() == [[1, 0]]  # sorted a0 (1.0 -> b1), a1 (0.5 tie -> b0)
    x, size = bipartite_merge(x1, None, torch.ones(1, 4), 2)
    torch.testing.assert_close(x, t([[[0, 0.5], [1, 0]]]), rtol=0, atol=1e-6)
    assert torch.isfinite(x).all()


def test_hand_fp16_input_fp16_output_fp32_size():
    # the r = 3 case in fp16: every expected value (1.5, 0.75, 1.75, -1) is exact in fp16
    x, size = bipartite_merge(t([X6]).half(), t([SIZE6]), t([SCORE6]), 3)
    assert x.dtype == torch.float16 and size.dtype == torch.float32
    torch.testing.assert_close(x.float(), t([[[1.5, 0], [0.75, 1.75], [-1, 0]]]), rtol=0, atol=1e-3)
    torch.testing.assert_close(size, t([[2, 4, 1]]), rtol=0, atol=0)
    # fp16 size and score are taken in fp32 as well
    x, size = bipartite_merge(t([X6]).half(), t([SIZE6]).half(), t([SCORE6]).half(), 3)
    assert x.dtype == torch.float16 and size.dtype == torch.float32


def test_hand_r0_is_identity():
    x, size = bipartite_merge(t([X6]), t([SIZE6]), t([SCORE6]), 0)
    assert torch.equal(x, t([X6])) and torch.equal(size, t([SIZE6]))
    x, size = bipartite_merge(t([X6]), None, t([SCORE6]), 0)
    assert torch.equal(x, t([X6])) and torch.equal(size, torch.ones(1, 6))


@pytest.mark.parametrize(
    ("r", "n", "protected", "expected"),
    [
        (16, 100, 0, 16),  # a count
        (1, 10, 0, 1),  # r = 1 is a count, not a fraction
        (0, 10, 0, 0),
        (0.25, 8, 0, 2),  # fraction: int(8 * 0.25) = 2
        (0.5, 7, 0, 3),  # int(3.5) = 3
        (0.3, 10, 0, 3),  # int(3.0) = 3
        (0.1, 9, 0, 0),  # int(0.9) = 0
        (0.9, 8, 0, 4),  # int(7.2) = 7, clamped to 8 // 2 = 4
        (600, 1000, 0, 500),  # clamped to N // 2
        (5, 7, 0, 3),  # odd N: 7 // 2 = 3
        (4, 8, 1, 3),  # class token: (8 - 1) // 2 = 3
        (3, 7, 1, 3),  # (7 - 1) // 2 = 3
        (2.9, 10, 0, 2),  # a non-integer count is truncated
    ],
)
def test_resolve_r(r, n, protected, expected):
    assert resolve_r(r, n, protected) == expected


def test_resolve_r_negative_raises():
    with pytest.raises(ValueError, match=">= 0"):
        resolve_r(-1, 10)


# ----------------------------------------------------------------------------------------------
# Properties


def official_merge(x, size, score, r):
    """The published `merging` + `merge_wavg`, as written (no guards; NaN for zero-norm tokens)."""
    return oracle.merge(x, size, score, r, guard_nan=False)


@st.composite
def merge_inputs(draw, min_c=2, integer_tokens=False):
    b = draw(st.integers(1, 3))
    n = draw(st.integers(2, 20))
    c = draw(st.integers(min_c, 10))
    r = draw(st.integers(0, n // 2))
    seed = draw(st.integers(0, 2**31 - 1))
    size_kind = draw(st.sampled_from(["none", "int", "float"]))
    score_kind = draw(st.sampled_from(["uniform", "binary", "ones", "zeros"]))
    g = torch.Generator().manual_seed(seed)
    if integer_tokens:  # many exact ties in the similarity table
        x = torch.randint(-1, 2, (b, n, c), generator=g).float()
    else:
        x = torch.randn(b, n, c, generator=g) * draw(st.sampled_from([0.01, 1.0, 100.0]))
    size = {
        "none": None,
        "int": torch.randint(1, 9, (b, n), generator=g).float(),
        "float": torch.rand(b, n, generator=g) * 5 + 0.1,
    }[size_kind]
    score = {
        "uniform": torch.rand(b, n, generator=g),
        "binary": torch.randint(0, 2, (b, n), generator=g).float(),
        "ones": torch.ones(b, n),
        "zeros": torch.zeros(b, n),
    }[score_kind]
    return x, size, score, r


@SETTINGS
@given(merge_inputs())
def test_shapes_dtypes_and_finite(inputs):
    x, size, score, r = inputs
    b, n, c = x.shape
    x2, s2 = bipartite_merge(x, size, score, r)
    assert x2.shape == (b, n - r, c) and s2.shape == (b, n - r)
    assert x2.dtype == torch.float32 and s2.dtype == torch.float32
    assert torch.isfinite(x2).all() and torch.isfinite(s2).all()
    assert (s2 > 0).all()


@SETTINGS
@given(merge_inputs())
def test_mass_conservation(inputs):
    x, size, score, r = inputs
    b, n, _ = x.shape
    mass = torch.ones(b, n) if size is None else size
    _, s2 = bipartite_merge(x, size, score, r)
    plan = plan_merge(x, r)
    lost = ((1 - score[:, ::2].gather(1, plan.sources)) * mass[:, ::2].gather(1, plan.sources)).sum(
        -1
    )
    torch.testing.assert_close(s2.sum(-1), mass.sum(-1) - lost, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(merge_inputs())
def test_kept_a_tokens_in_order_then_all_b_tokens(inputs):
    x, size, score, r = inputs
    b, n, c = x.shape
    na, nb = (n + 1) // 2, n // 2
    mass = torch.ones(b, n) if size is None else size
    x2, s2 = bipartite_merge(x, size, score, r)
    if r == 0:  # nothing merges: the tokens stay exactly as they were (the published early return)
        assert torch.equal(x2, x) and torch.equal(s2, mass)
        return
    plan = plan_merge(x, r)
    for i in range(b):
        kept = plan.unmerged[i]
        assert kept.tolist() == sorted(kept.tolist())
        assert sorted(kept.tolist() + plan.sources[i].tolist()) == list(range(na))
        # the first na - r outputs are those a-tokens, unchanged, in ascending original order
        assert torch.equal(x2[i, : na - r], x[i, ::2][kept])
        assert torch.equal(s2[i, : na - r], mass[i, ::2][kept])
        # then nb b-tokens; those that received nothing are unchanged (up to x * size / size)
        touched = set(plan.destinations[i].tolist())
        for j in range(nb):
            if j not in touched:
                torch.testing.assert_close(x2[i, na - r + j], x[i, 2 * j + 1], rtol=1e-6, atol=0)
                assert s2[i, na - r + j] == mass[i, 2 * j + 1]


@SETTINGS
@given(merge_inputs())
def test_all_scores_zero_drops_every_source(inputs):
    x, size, _, r = inputs
    assume(r > 0)
    b, n, _ = x.shape
    mass = torch.ones(b, n) if size is None else size
    x2, s2 = bipartite_merge(x, size, torch.zeros(b, n), r)
    na = (n + 1) // 2
    torch.testing.assert_close(x2[:, na - r :], x[:, 1::2], rtol=1e-6, atol=0)
    torch.testing.assert_close(s2[:, na - r :], mass[:, 1::2], rtol=0, atol=0)


@SETTINGS
@given(merge_inputs())
def test_r0_with_unit_scores_is_identity(inputs):
    x, size, _, _ = inputs
    b, n, _ = x.shape
    x2, s2 = bipartite_merge(x, size, torch.ones(b, n), 0)
    assert torch.equal(x2, x)
    assert torch.equal(s2, torch.ones(b, n) if size is None else size)


@SETTINGS
@given(merge_inputs())
def test_equals_official_transcription(inputs):
    x, size, score, r = inputs
    ref_x, ref_size = official_merge(x, size, score, r)
    assume(torch.isfinite(ref_x).all())  # float tokens: finite unless a norm underflows
    got_x, got_size = bipartite_merge(x, size, score, r)
    scale = x.abs().max().item() + 1e-30
    torch.testing.assert_close(got_x, ref_x, rtol=1e-5, atol=1e-6 * scale)
    torch.testing.assert_close(got_size, ref_size, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(merge_inputs(min_c=1, integer_tokens=True))
def test_equals_official_transcription_with_ties(inputs):
    # small-integer tokens: many equal similarities, so the tie rule decides which tokens merge;
    # zero tokens make the published similarity NaN, and those cases are skipped
    x, size, score, r = inputs
    assume((x.norm(dim=-1) > 0).all())  # a zero token makes the published similarity NaN
    ref_x, ref_size = official_merge(x, size, score, r)
    got_x, got_size = bipartite_merge(x, size, score, r)
    torch.testing.assert_close(got_x, ref_x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_size, ref_size, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(merge_inputs(min_c=1, integer_tokens=True))
def test_zero_tokens_stay_finite(inputs):
    x, size, score, r = inputs
    x2, s2 = bipartite_merge(x, size, score, r)
    assert torch.isfinite(x2).all() and torch.isfinite(s2).all()


@SETTINGS
@given(merge_inputs())
def test_class_token_kept_first(inputs):
    x, size, score, r = inputs
    b, n, _ = x.shape
    r = min(r, (n - 1) // 2)
    mass = torch.ones(b, n) if size is None else size
    x2, s2 = bipartite_merge(x, size, score, r, class_token=True)
    assert x2.shape[1] == n - r
    assert torch.equal(x2[:, 0], x[:, 0])
    assert torch.equal(s2[:, 0], mass[:, 0])
    assert (plan_merge(x, r, class_token=True).sources != 0).all()


@SETTINGS
@given(merge_inputs())
def test_fp16_matches_fp32_of_the_same_values(inputs):
    x, size, score, r = inputs
    x16 = x.half()
    assume(torch.isfinite(x16).all() and (x16.float().norm(dim=-1) > 0).all())
    got_x, got_size = bipartite_merge(x16, size, score, r)
    assert got_x.dtype == torch.float16 and got_size.dtype == torch.float32
    ref_x, ref_size = bipartite_merge(x16.float(), size, score, r)
    torch.testing.assert_close(got_x, ref_x.half(), rtol=0, atol=0)
    torch.testing.assert_close(got_size, ref_size, rtol=0, atol=0)


@SETTINGS
@given(merge_inputs())
def test_custom_op_equals_function(inputs):
    import vidtldr_deploy.core.ops  # noqa: F401  (registers torch.ops.vidtldr.*)

    x, size, score, r = inputs
    assume(r > 0)  # r = 0: see test_custom_op_r0_returns_fresh_tensors
    b, n, _ = x.shape
    mass = torch.ones(b, n) if size is None else size
    op_x, op_size = torch.ops.vidtldr.merge(x, mass, score, r)
    fn_x, fn_size = bipartite_merge(x, mass, score, r)
    assert torch.equal(op_x, fn_x) and torch.equal(op_size, fn_size)


def test_custom_op_opcheck():
    import vidtldr_deploy.core.ops  # noqa: F401

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 5, generator=g)
    args = (x, torch.rand(2, 9, generator=g) + 0.5, torch.rand(2, 9, generator=g), 3)
    torch.library.opcheck(torch.ops.vidtldr.merge.default, args)


def test_custom_op_r0_returns_fresh_tensors():
    import vidtldr_deploy.core.ops  # noqa: F401

    x, size, score = t([X6]), t([SIZE6]), t([SCORE6])
    op_x, op_size = torch.ops.vidtldr.merge(x, size, score, 0)
    assert torch.equal(op_x, x) and torch.equal(op_size, size)
    assert op_x.data_ptr() != x.data_ptr() and op_size.data_ptr() != size.data_ptr()


@pytest.mark.parametrize("n,r,class_token", [(7, 4, False), (6, 3, True), (8, -1, False)])
def test_out_of_range_r_is_refused(n, r, class_token):
    # The op's static output shape is N - r: a silently clamped r would disagree with it.
    x = torch.randn(1, n, 3)
    with pytest.raises(ValueError, match="use resolve_r"):
        bipartite_merge(x, None, torch.ones(1, n), r, class_token=class_token)
