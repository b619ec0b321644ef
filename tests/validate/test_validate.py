"""Comparison metrics and the validation verdict, with runners whose errors are known."""

from __future__ import annotations

import numpy as np
import pytest

from vidtldr_deploy.core.schedule import resolve_schedule
from vidtldr_deploy.models.source import load_source
from vidtldr_deploy.runtime.pytorch import torch_outputs
from vidtldr_deploy.validate.check import validate_runner
from vidtldr_deploy.validate.inputs import make_inputs
from vidtldr_deploy.validate.metrics import (
    compare_output,
    cosine_similarity,
    relative_l2,
    topk_agreement,
)
from vidtldr_deploy.validate.tolerances import default_tolerances


def test_metrics_on_known_arrays():
    ref = np.array([[3.0, 4.0], [1.0, 0.0]])
    assert relative_l2(ref, ref * 1.1) == pytest.approx(0.1)
    assert cosine_similarity(ref, np.array([[4.0, -3.0], [1.0, 0.0]])) == pytest.approx(0.0)
    logits = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.3]])
    swapped = np.array(
        [[0.9, 0.1, 0.5], [0.8, 0.1, 0.3]]
    )  # sample 0: top-1 1 -> 0, top-2 {1,2} -> {0,2}
    assert topk_agreement(1)(logits, swapped) == 0.5
    assert topk_agreement(2)(logits, swapped) == 0.5
    assert topk_agreement(3)(logits, swapped) == 1.0


def test_compare_output_bounds_and_shapes():
    tol = default_tolerances("fp32")
    ref = np.ones((2, 8))
    assert compare_output("pooled", ref, ref + tol.mean_abs / 2, tol).passed
    spike = ref.copy()
    spike[1, 3] += 2 * tol.max_abs
    bad = compare_output("pooled", ref, spike, tol)
    assert not bad.passed and any(f.startswith("max_abs") for f in bad.failures)
    assert compare_output("pooled", ref, np.ones((2, 7)), tol).failures == [
        "shape (2, 7) != reference (2, 8)"
    ]
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert "output has NaN or inf" in compare_output("pooled", ref, nan, tol).failures
    logits = compare_output("logits", np.eye(3), np.eye(3)[::-1], tol)
    assert logits.metrics["top1"] == pytest.approx(1 / 3) and not logits.passed


class ShiftedTokens:
    """A runtime that merged one other token: kept rows shift by one, pooled is right."""

    name = "fake"

    def __init__(self, loaded, rs, pooled_error=0.0):
        self.loaded, self.rs, self.pooled_error = loaded, rs, pooled_error

    def run(self, video):
        out = torch_outputs(self.loaded.model, self.rs, video)
        out["tokens"] = np.roll(out["tokens"], 1, axis=1)
        out["pooled"] = out["pooled"] + self.pooled_error
        return out


@pytest.fixture(scope="module")
def demo():
    loaded = load_source("demo-random")
    schedule = resolve_schedule("0.25x2", loaded.model.cfg.depth, loaded.model.num_tokens)
    clips = make_inputs((1, 3, 4, 32, 32), seed=0, count=1)
    return loaded, schedule, clips


def _validate(demo, runner, strict=False):
    loaded, schedule, clips = demo
    return validate_runner(
        runner, "fake", loaded, schedule, clips, default_tolerances("fp32"), strict_tokens=strict
    )


def test_shifted_tokens_are_reported_not_judged(demo):
    loaded, schedule, _ = demo
    result = _validate(demo, ShiftedTokens(loaded, schedule.rs))
    tokens = next(o for o in result.outputs if o.name == "tokens")
    assert not tokens.passed and not tokens.gating
    assert result.passed
    assert result.to_dict()["outputs"][0]["gating"] is False


def test_strict_tokens_makes_them_decide(demo):
    loaded, schedule, _ = demo
    assert not _validate(demo, ShiftedTokens(loaded, schedule.rs), strict=True).passed


def test_wrong_pooled_fails(demo):
    loaded, schedule, _ = demo
    assert not _validate(demo, ShiftedTokens(loaded, schedule.rs, pooled_error=1.0)).passed


def test_unmerged_tokens_always_decide(demo):
    loaded, _, clips = demo
    none = resolve_schedule("none", loaded.model.cfg.depth, loaded.model.num_tokens)
    result = validate_runner(
        ShiftedTokens(loaded, none.rs), "fake", loaded, none, clips, default_tolerances("fp32")
    )
    assert not result.passed
