"""The comparators on hand-made results: no runner runs here, the outputs are written out."""

from __future__ import annotations

import numpy as np
import pytest

from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.evaluate import metrics as evaluate_metrics
from vidtldr_deploy.runtime.base import merge_input_name, merge_inputs_of
from vidtldr_deploy.validate import metrics as validate_metrics
from vidtldr_deploy.validate.compare import (
    compare_merge_decisions,
    compare_to_reference,
    merge_cost,
    model_outputs,
)
from vidtldr_deploy.validate.run import RunResult
from vidtldr_deploy.validate.tolerances import default_tolerances

# 4 layers, 32 tokens: the first two merge 8 and 4
SCHEDULE = resolve_schedule("8,4", 4, 32)


def _result(outputs, runner="hand"):
    return RunResult(runner, outputs, 0.0)


def _states(seed):
    gen = np.random.default_rng(seed)
    return [gen.standard_normal((2, 32, 8)).astype(np.float32),
            gen.standard_normal((2, 24, 8)).astype(np.float32)]  # fmt: skip


def _with_merge_inputs(outputs, states):
    return outputs | {merge_input_name(i): s for i, s in enumerate(states)}


POOLED = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])


def test_tolerances_judge_pooled_and_tokens_only_report():
    tokens = np.arange(24.0).reshape(1, 4, 6)
    ref = _result({"tokens": tokens, "pooled": POOLED})
    shifted = _result({"tokens": np.roll(tokens, 1, axis=1), "pooled": POOLED + 1e-4})
    results = compare_to_reference(ref, shifted, default_tolerances("fp32"), SCHEDULE)
    by_name = {r.name: r for r in results}
    assert by_name["pooled"].passed and by_name["pooled"].gating
    assert not by_name["tokens"].passed and not by_name["tokens"].gating
    strict = compare_to_reference(ref, shifted, default_tolerances("fp32"), SCHEDULE, True)
    assert all(r.gating for r in strict)


def test_merge_inputs_are_not_compared_as_outputs():
    states = _states(0)
    ref = _result(_with_merge_inputs({"pooled": POOLED}, states))
    got = _result(_with_merge_inputs({"pooled": POOLED}, _states(1)))
    results = compare_to_reference(ref, got, default_tolerances("fp32"), SCHEDULE)
    assert [r.name for r in results] == ["pooled"] and results[0].passed
    assert list(model_outputs(ref.outputs)) == ["pooled"]
    assert [s.shape for s in merge_inputs_of(ref.outputs)] == [(2, 32, 8), (2, 24, 8)]


def test_missing_output_fails_rather_than_crashes():
    ref = _result({"pooled": POOLED, "logits": np.eye(2)})
    (pooled, logits) = compare_to_reference(
        ref, _result({"pooled": POOLED}), default_tolerances("fp32"), SCHEDULE
    )
    assert pooled.passed and logits.failures == ["output missing"]


def test_merge_cost_skips_outputs_whose_shape_merging_changes():
    unmerged = _result({"tokens": np.zeros((2, 32, 3)), "pooled": POOLED})
    merged = _result({"tokens": np.zeros((2, 20, 3)), "pooled": POOLED * 1.1})
    (cost,) = merge_cost(unmerged, merged)
    assert cost.name == "pooled" and cost.passed  # reported, never judged
    assert cost.metrics["rel_l2"] == pytest.approx(0.1)


def test_merge_decisions_agree_on_the_same_states_and_not_on_others():
    states = _states(0)
    ref = _result(_with_merge_inputs({"pooled": POOLED}, states))
    same = compare_merge_decisions(ref, _result(_with_merge_inputs({}, states)), SCHEDULE)
    assert [(a.layer, a.r) for a in same] == [(0, 8), (1, 4)]
    assert all(a.pairs == a.sources == a.kept == 1.0 for a in same)
    other = compare_merge_decisions(ref, _result(_with_merge_inputs({}, _states(1))), SCHEDULE)
    assert min(a.pairs for a in other) < 1.0
    # a tiny perturbation that leaves every best match in place keeps every decision
    nudged = [s + 1e-7 for s in states]
    assert all(a.pairs == 1.0 for a in compare_merge_decisions(
        ref, _result(_with_merge_inputs({}, nudged)), SCHEDULE))  # fmt: skip


def test_metric_names_mean_the_same_in_validate_and_evaluate():
    ref = np.array([[0.1, 0.9, 0.5, 0.0, 0.2, 0.3], [0.8, 0.1, 0.3, 0.2, 0.0, 0.4]])
    # clip 0: the reference's top class (1) is 2nd in the output; clip 1: 6th
    out = np.array([[0.9, 0.8, 0.1, 0.0, 0.2, 0.3], [0.1, 0.9, 0.8, 0.7, 0.6, 0.5]])
    hits1 = evaluate_metrics.topk_hits(ref, out, 1)
    hits5 = evaluate_metrics.topk_hits(ref, out, 5)
    assert list(hits1) == [0.0, 0.0] and list(hits5) == [1.0, 0.0]
    # validate's top1/top5 of an output is the fraction of its clips that hit (same definition)
    assert validate_metrics.LOGIT_METRICS["top5"](ref, out) == hits5.mean() == 0.5
    assert validate_metrics.LOGIT_METRICS["top1"](ref, out) == hits1.mean()
    # ... and its cosine / rel_l2 is the worst clip's
    cos = evaluate_metrics.cosine_rows(ref, out)
    rel = evaluate_metrics.relative_l2_rows(ref, out)
    assert validate_metrics.cosine_similarity(ref, out) == pytest.approx(cos.min())
    assert validate_metrics.relative_l2(ref, out) == pytest.approx(rel.max())
