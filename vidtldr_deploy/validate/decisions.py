"""Merge-decision agreement, the comparator's maths: which (source -> destination) pairs each merge
layer chooses given the hidden state entering it, and how much of one side's choice the other
repeats.

A merge is fp32 and deterministic given the hidden state that enters it, so a low-precision
runtime can change a decision only through that hidden state. Both sides' states go through
core.merge.plan_merge, the same bipartite matching the graph computes, and the chosen pairs are
compared by original token id (each side tracks which original token every row carries after its
own earlier merges, so one flip upstream does not mis-align every later row). Caveat: a graph's own
arithmetic can differ from PyTorch's in the last bits at a near-tie; run the fp32 graph the same
way for that floor (benchmarks/bench_int8.py reports both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidtldr_deploy.core.merge import plan_merge
from vidtldr_deploy.errors import RuntimeFailure


@dataclass(frozen=True)
class LayerDecisions:
    """One merge layer's choices on one clip batch, as original-token ids."""

    layer: int
    r: int
    pairs: frozenset[tuple[int, int, int]]  # (batch row, source id, destination id)
    kept: frozenset[tuple[int, int]]  # (batch row, id of a token row that survives)


@dataclass(frozen=True)
class LayerAgreement:
    layer: int
    r: int
    sources: float  # fraction of fp32's merged tokens INT8 also merged
    pairs: float  # ... also merged into the same destination
    kept: float  # fraction of fp32's surviving token rows that also survive in INT8

    def to_dict(self) -> dict:
        return {"layer": self.layer, "r": self.r, "sources": self.sources, "pairs": self.pairs,
                "kept": self.kept}  # fmt: skip


def merge_decisions(
    hidden: Sequence[np.ndarray], layers: Sequence[tuple[int, int]]
) -> list[LayerDecisions]:
    """Decisions of each merge layer from the hidden state (B, N, C) entering it; `layers` gives
    (layer index, r) in order. Row i of the first state is original token i."""
    out: list[LayerDecisions] = []
    ids: np.ndarray | None = None
    for x, (layer, r) in zip(hidden, layers):
        b, n = x.shape[:2]
        if ids is None:
            ids = np.tile(np.arange(n), (b, 1))
        if ids.shape != (b, n):
            raise RuntimeFailure(
                f"merge layer {layer}: hidden state {x.shape} after {ids.shape} ids"
            )
        plan = plan_merge(torch.from_numpy(np.asarray(x, dtype=np.float32)), r)
        a_ids, b_ids = ids[:, ::2], ids[:, 1::2]
        src = np.take_along_axis(a_ids, plan.sources.numpy(), 1)
        dst = np.take_along_axis(b_ids, plan.destinations.numpy(), 1)
        ids = np.concatenate([np.take_along_axis(a_ids, plan.unmerged.numpy(), 1), b_ids], axis=1)
        pairs = frozenset(
            (row, int(s), int(d)) for row in range(b) for s, d in zip(src[row], dst[row])
        )
        kept = frozenset((row, int(t)) for row in range(b) for t in ids[row])
        out.append(LayerDecisions(layer, r, pairs, kept))
    return out


def decision_agreement(
    reference: Sequence[Sequence[LayerDecisions]], candidate: Sequence[Sequence[LayerDecisions]]
) -> list[LayerAgreement]:
    """Per merge layer, pooled over clip batches: how much of the reference's choice the
    candidate repeats."""
    if not reference:
        return []
    result = []
    for i, first in enumerate(reference[0]):
        n_pairs = n_src = n_kept = same_pairs = same_src = same_kept = 0
        for ref_clip, cand_clip in zip(reference, candidate):
            ref, cand = ref_clip[i], cand_clip[i]
            ref_src = {(row, s) for row, s, _ in ref.pairs}
            cand_src = {(row, s) for row, s, _ in cand.pairs}
            n_pairs += len(ref.pairs)
            same_pairs += len(ref.pairs & cand.pairs)
            n_src += len(ref_src)
            same_src += len(ref_src & cand_src)
            n_kept += len(ref.kept)
            same_kept += len(ref.kept & cand.kept)
        result.append(LayerAgreement(
            first.layer, first.r, same_src / max(n_src, 1), same_pairs / max(n_pairs, 1),
            same_kept / max(n_kept, 1),
        ))  # fmt: skip
    return result


def overall_agreement(layers: Sequence[LayerAgreement]) -> float:
    """Agreeing (source, destination) pairs over all merged tokens of all layers."""
    total = sum(a.r for a in layers)
    return sum(a.pairs * a.r for a in layers) / total if total else 1.0
