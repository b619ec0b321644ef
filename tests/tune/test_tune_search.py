"""tune/: budgets met, never worse than presets and RxL, prefix sharing, Ctrl-C, export config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support.tiny_models import attention_entropy, moving_blocks, tiny_model
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.config import load_export_config
from vidtldr_deploy.models.presets import schedule_for
from vidtldr_deploy.tune import (
    Budget,
    PrefixRunner,
    SearchOptions,
    default_token_counts,
    fit_block_cost,
    plot_pareto,
    torch_block_timer,
    torch_cost_model,
    torch_fixed_ms,
    tune,
    write_tuned_config,
)
from vidtldr_deploy.tune.search import spread_front

# Tiny stand-ins for published presets (umt-tiny has none): two do not fit and are skipped.
PRESETS = {"a": [16, 8], "b": [8, 8, 8], "c": [20], "clamped": [40], "deep": [4, 4, 4, 4, 4],
           "same-as-a": [16, 8, 0]}  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_model()


@pytest.fixture(scope="module")
def clips():
    return moving_blocks(8)


def fake_block_ms(n: int) -> float:
    return 0.05 + 0.002 * n + 4e-5 * n * n  # deterministic: a latency test must not be flaky


def check_never_worse(result) -> None:
    fixed = [c for c in result.candidates if c.form != "beam" and c.meets_budget]
    assert result.best.meets_budget
    assert all(result.best.drift <= c.drift for c in fixed)
    assert all(result.best.drift <= c.drift for c in result.candidates if c.meets_budget)


def test_attention_is_peaked(model, clips):
    video = torch.from_numpy(clips)
    for layer in range(model.cfg.depth):
        entropy, uniform = attention_entropy(model, video, layer)
        assert entropy < 0.8 * uniform


def test_flops_budget(model, clips):
    result = tune(
        model,
        clips,
        Budget("flops", 0.6),
        arch="umt-tiny",
        presets=PRESETS,
        options=SearchOptions(rxl_per_rate=3),
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["flops"]["ratio"] <= 0.6 and data["meets_budget"] and not data["interrupted"]
    check_never_worse(result)
    assert data["drift"] > 0
    assert {p["name"] for p in data["presets"]} == {"a", "b", "c", "same-as-a"}
    assert set(data["presets_skipped"]) == {"clamped", "deep"}
    assert data["target"] == {"kind": "flops", "value": 0.6}
    assert data["candidates_evaluated"] == len(result.candidates)
    ratios = [p["flops_ratio"] for p in data["pareto"]]
    drifts = [p["drift"] for p in data["pareto"]]
    assert ratios == sorted(ratios) and drifts == sorted(drifts, reverse=True)
    assert data["schedule"] in [p["schedule"] for p in data["pareto"]]
    assert set(data["seconds"]) == {"prefix", "search"}


def test_speedup_budget_on_a_classifier(clips):
    model = tiny_model(num_classes=5)
    result = tune(model, clips, Budget("speedup", 1.5), presets=PRESETS)
    assert result.output == "logits"
    assert 1 / result.best.flops_ratio >= 1.5
    check_never_worse(result)


def test_latency_budget_with_a_fake_timer(model, clips):
    cost_model = fit_block_cost(fake_block_ms, [8, 16, 32, 64], fixed_ms=0.5)
    np.testing.assert_allclose(
        [cost_model.a, cost_model.b, cost_model.c], [0.05, 0.002, 4e-5], rtol=1e-6, atol=1e-9
    )
    baseline = cost_model.predict_ms(64, [0] * 4)
    assert baseline == pytest.approx(0.5 + 4 * fake_block_ms(64))
    result = tune(
        model, clips, Budget("latency_ms", 0.7 * baseline), presets=PRESETS, cost_model=cost_model
    )
    data = result.to_dict()
    assert data["latency_ms"] <= 0.7 * baseline
    assert cost_model.predict_ms(64, result.best.rs) == pytest.approx(data["latency_ms"])
    assert all("latency_ms" in p for p in data["pareto"])
    check_never_worse(result)


def test_fit_on_repeated_runs_uses_their_median_and_records_their_spread():
    runs = {8: [1.0, 1.0, 1.0], 16: [2.0, 2.0, 2.0], 32: [3.0, 4.0, 5.0, 4.0, 4.0]}
    fitted = fit_block_cost(lambda n: runs[n], list(runs))
    assert [ms for _, ms in fitted.samples] == [1.0, 2.0, 4.0]
    assert fitted.spread == 0.0  # the 32-token runs: quartiles 4 and 4, one slow run ignored
    noisy = {**runs, 8: [1.0, 1.0, 2.0, 3.0]}  # quartiles 1 and 2.25 around a median of 1.5
    assert fit_block_cost(lambda n: noisy[n], list(noisy)).spread == pytest.approx(1.25 / 1.5)


def test_torch_timer_fits(model):
    timer = torch_block_timer(model, repeats=1, warmup=0)
    fitted = fit_block_cost(timer, [16, 32, 64], fixed_ms=torch_fixed_ms(model, repeats=1))
    assert fitted.fixed_ms > 0 and len(fitted.samples) == 3
    assert all(ms > 0 for _, ms in fitted.samples)
    full = torch_cost_model(model, repeats=1)
    assert [n for n, _ in full.samples] == default_token_counts(64) == [8, 22, 36, 50, 64]


def test_prefix_cache_saves_block_calls(model, clips):
    result = tune(model, clips, Budget("flops", 0.6), presets=PRESETS)
    naive = model.cfg.depth * len(result.candidates)
    assert result.block_calls < naive
    # the cache holds the same activations a fresh full pass computes
    runner = PrefixRunner(model, torch.from_numpy(clips))
    best = result.best.rs
    shared = runner.output(best)
    model.set_schedule(list(best))
    with torch.inference_mode():
        direct = model(torch.from_numpy(clips))[1].numpy()
    model.set_schedule([0] * model.cfg.depth)
    np.testing.assert_allclose(shared, direct, rtol=1e-5, atol=1e-6)


def test_ctrl_c_returns_best_so_far(model, clips):
    seen = []

    def progress(event):
        seen.append(event.candidate)
        if len(seen) == 8:
            raise KeyboardInterrupt

    result = tune(model, clips, Budget("flops", 0.6), presets=PRESETS, progress=progress)
    assert result.interrupted and result.to_dict()["interrupted"] is True
    assert len(result.candidates) == 8
    feasible = [c for c in seen if c.meets_budget]
    assert feasible and result.best == min(feasible, key=lambda c: (c.drift, c.cost))


def test_unreachable_budget_is_refused(model, clips):
    with pytest.raises(VidTLDRError, match="no schedule meets"):
        tune(model, clips, Budget("flops", 0.01))
    with pytest.raises(VidTLDRError):
        Budget("flops", 1.5)


def test_written_config_loads_with_the_same_schedule(model, clips, tmp_path):
    result = tune(
        model,
        clips,
        Budget("flops", 0.6),
        arch="umt-tiny",
        presets=PRESETS,
        options=SearchOptions(beam_width=2),
    )
    data = result.to_dict()
    path = write_tuned_config(tmp_path / "tuned.toml", data)
    config = load_export_config(path)
    assert (config.arch, config.frames, config.schedule) == ("umt-tiny", 4, data["schedule"])
    assert "tuned for flops 0.6" in config.description
    again = schedule_for(config.schedule, config.arch, model.cfg.depth, model.num_tokens)
    assert tuple(again.rs) == result.best.rs
    assert plot_pareto(data, tmp_path / "pareto.png").stat().st_size > 0


def test_spread_front_keeps_both_ends():
    class C:
        def __init__(self, cost, drift):
            self.cost, self.drift = cost, drift

    items = [((i,), C(10 - i, i)) for i in range(7)] + [((9,), C(9, 9))]  # last one dominated
    picked = spread_front(items, 3)
    assert [p[1].drift for p in picked] == [6, 3, 0]


def test_clamped_presets_on_request(model, clips):
    options = SearchOptions(clamped_presets=True, beam_width=1)
    result = tune(model, clips, Budget("flops", 0.6), presets=PRESETS, options=options)
    data = result.to_dict()
    assert {p["name"] for p in data["presets"]} == {"a", "b", "c", "same-as-a", "clamped~"}
    assert next(p for p in data["presets"] if p["name"] == "clamped~")["schedule"] == "32"
    assert set(data["presets_skipped"]) == {"deep"}
    check_never_worse(result)
