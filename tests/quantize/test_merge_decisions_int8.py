"""Merge-decision agreement (validate/decisions.py): ids follow tokens through earlier merges."""

from __future__ import annotations

import numpy as np

from vidtldr_deploy.validate.decisions import decision_agreement, merge_decisions, overall_agreement


def _states(seed: int, n: int = 32, c: int = 8, rs=(8, 4)):
    gen = np.random.default_rng(seed)
    first = gen.standard_normal((2, n, c)).astype(np.float32)
    second = gen.standard_normal((2, n - rs[0], c)).astype(np.float32)
    return [first, second]


def test_same_states_agree_fully():
    layers = [(0, 8), (1, 4)]
    dec = merge_decisions(_states(0), layers)
    agreement = decision_agreement([dec], [dec])
    assert [a.layer for a in agreement] == [0, 1]
    assert all(a.pairs == a.sources == a.kept == 1.0 for a in agreement)
    assert overall_agreement(agreement) == 1.0
    # Every layer merges r tokens of each batch row, and keeps N - r rows.
    assert len(dec[0].pairs) == 2 * 8 and len(dec[0].kept) == 2 * (32 - 8)


def test_different_states_disagree_and_ids_are_original_tokens():
    layers = [(0, 8), (1, 4)]
    a = merge_decisions(_states(0), layers)
    b = merge_decisions(_states(1), layers)
    agreement = decision_agreement([a], [b])
    assert overall_agreement(agreement) < 1.0
    for dec in (a, b):
        ids = {t for _, t in dec[1].kept} | {s for _, s, _ in dec[1].pairs}
        assert ids <= set(range(32))  # layer-1 ids name layer-0 tokens, not layer-1 rows
        merged0 = {(row, s) for row, s, _ in dec[0].pairs}
        assert not merged0 & dec[1].kept  # a token merged away never comes back
