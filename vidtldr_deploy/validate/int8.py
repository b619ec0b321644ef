"""Validation of an INT8 Q/DQ graph (issue 12): outputs against the PyTorch fp32 merged model
with INT8 tolerances, and how many merge decisions INT8 changed.

Merge decisions. A Merge island is fp32 and deterministic given the hidden state that enters it,
so INT8 can change a decision only through that hidden state. The graph is run with each merge
island's incoming hidden state exposed as an extra output (the tensor is fp32 by construction: no
Q/DQ on an island's path, see export.merge_islands); the PyTorch fp32 model's hidden state at the
same point is captured with a hook on each MergeStep. Both go through core.merge.plan_merge, the
same bipartite matching the islands compute, and the chosen (source -> destination) pairs are
compared by original token id (each side tracks which original token every row carries after its
own earlier merges, so one flip upstream does not mis-align every later row). Caveat: the graph's
own arithmetic can differ from PyTorch's in the last bits at a near-tie; run the fp32 graph the
same way for that floor (benchmarks/bench_int8.py reports both).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from vidtldr_deploy.core.merge import plan_merge
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import RuntimeFailure
from vidtldr_deploy.export.merge_islands import merge_hidden_inputs
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.models.vit import MergeViT
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.run import validate_runner
from vidtldr_deploy.validate.tolerances import DEFAULT_TOLERANCES, Tolerances

# Proposed INT8 bounds on the gating outputs (pooled / logits) against PyTorch fp32 merged. Measured
# (pooled, worst clip): tiny demo UMT 0.25x2, 8 clips: cosine 0.9958, rel_l2 4.9e-2, max_abs 0.23,
# mean_abs 2.7e-2, decision agreement 95%; UMT-B 4 frames 300,100 (random weights): see
# benchmarks/bench_int8.py (cosine ~0.9996). A 64-wide tiny model is the noisiest case (fewer
# channels average the rounding), so the bounds sit ~2x outside it; they are ~5-10x fp16's.
INT8_TOLERANCES = DEFAULT_TOLERANCES["int8"]  # fmt: skip
# Below this fraction of agreeing (source, destination) merge pairs the INT8 graph no longer
# merges what fp32 merges (tiny demo: 95%; UMT-B: see the benchmark).
MIN_DECISION_AGREEMENT = 0.9


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


# -------------------------------------------------------------------------------------------------
# Hidden states entering the merge islands

# The hidden-state tensor entering each merge island, in layer order (lives in export, which
# also uses it to keep the weight nodes feeding it in fp32).
merge_input_tensors = merge_hidden_inputs


def run_with_merge_inputs(
    onnx_path: str | Path, videos: Sequence[np.ndarray]
) -> tuple[list[dict[str, np.ndarray]], list[list[np.ndarray]]]:
    """Run the graph on each clip batch in ONNX Runtime (CPU) with the merge islands' incoming
    hidden states as extra outputs: (graph outputs per clip, hidden states per clip)."""
    from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

    model = onnx.load(str(onnx_path))
    names = [o.name for o in model.graph.output]
    extra = merge_input_tensors(model)
    for t in extra:
        if t not in names:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
            )
    outputs, hidden = [], []
    with tempfile.TemporaryDirectory(prefix="vidtldr-int8-val-") as tmp:
        path = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(path))
        runner = OnnxRuntimeRunner(path, "cpu")
        for video in videos:
            got = runner.run(video)
            outputs.append({k: got[k] for k in names})
            hidden.append([got[t] for t in extra])
    return outputs, hidden


def torch_merge_inputs(model: MergeViT, rs: Sequence[int], video: np.ndarray) -> list[np.ndarray]:
    """The hidden state entering each MergeStep of the PyTorch model (fp32) under schedule rs."""
    captured: list[np.ndarray] = []
    handles = [
        block.merge.register_forward_pre_hook(
            lambda _m, args: captured.append(args[0].float().numpy())
        )
        for block in model.blocks
    ]
    saved = (list(model.rs), model.merge_impl)
    try:
        model.set_schedule(list(rs))
        with torch.inference_mode():
            model(torch.from_numpy(video))
    finally:
        model.set_schedule(*saved)
        for h in handles:
            h.remove()
    return captured


def merge_layers(schedule: MergeSchedule) -> list[tuple[int, int]]:
    return [(i, r) for i, r in enumerate(schedule.rs) if r > 0]


# -------------------------------------------------------------------------------------------------
# The whole check


@dataclass
class Int8Validation:
    validation: ValidationResult
    decisions: list[LayerAgreement]
    agreement: float
    min_agreement: float
    graph: str
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.validation.passed and self.agreement >= self.min_agreement

    def to_dict(self) -> dict:
        return {
            "kind": "int8_validation",
            "graph": self.graph,
            "validation": self.validation.to_dict(),
            "merge_decisions": {
                "method": "plan_merge on the hidden state entering each merge island (graph: "
                          "exposed as an extra output; PyTorch fp32: hook), pairs by token id",
                "layers": [a.to_dict() for a in self.decisions],
                "agreement": self.agreement,
                "min_agreement": self.min_agreement,
            },
            "notes": list(self.notes),
            "passed": self.passed,
        }  # fmt: skip


class _Replay:
    """A Runner over outputs already computed (validate_runner takes a runner)."""

    name = "onnxruntime"

    def __init__(self, outputs: list[dict[str, np.ndarray]]):
        self._outputs = iter(outputs)

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        return next(self._outputs)


def validate_int8(
    onnx_path: str | Path,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: Sequence[np.ndarray],
    tolerances: Tolerances = INT8_TOLERANCES,
    min_agreement: float = MIN_DECISION_AGREEMENT,
    inputs_label: str = "",
    keep: dict | None = None,
) -> Int8Validation:
    """Compare the INT8 graph with the PyTorch fp32 merged model on `inputs` (clip batches);
    `keep` as validate_runner's."""
    outputs, hidden = run_with_merge_inputs(onnx_path, inputs)
    validation = validate_runner(  # InputBatches keep their padding out of the metrics
        _Replay(outputs), str(onnx_path), loaded, schedule, inputs, tolerances,
        precision="int8", inputs_label=inputs_label, keep=keep,
    )  # fmt: skip
    layers = merge_layers(schedule)
    graph_dec = [merge_decisions(h, layers) for h in hidden]
    torch_dec = [merge_decisions(torch_merge_inputs(loaded.model, schedule.rs, v)
                                 [: len(layers)], layers) for v in inputs]  # fmt: skip
    agreement = decision_agreement(torch_dec, graph_dec)
    return Int8Validation(validation, agreement, overall_agreement(agreement), min_agreement,
                          str(onnx_path))  # fmt: skip
