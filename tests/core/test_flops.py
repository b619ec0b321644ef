"""core/flops.py: by hand for one block, against fvcore on the paper's model, and its contracts."""

from __future__ import annotations

import pytest
import torch

from support.paper_reference import PaperUMT
from vidtldr_deploy.core.flops import block_flops, count_flops, model_flops, token_count
from vidtldr_deploy.core.schedule import parse_schedule, resolve_schedule
from vidtldr_deploy.models.presets import presets_for, schedule_for
from vidtldr_deploy.models.registry import get_architecture


def test_one_block_by_hand():
    # n=10 tokens, C=8, 2 heads (D=4), hidden 32, r=3 -> 7 tokens after the merge.
    row = block_flops(0, n=10, r=3, dim=8, heads=2, hidden=32)
    assert row.norm1 == 5 * 10 * 8
    assert row.qkv == 10 * 8 * 24
    assert row.attn == 2 * (2 * 10 * 4 * 10)  # q k^T and P v, per head
    assert row.proj == 10 * 8 * 8
    assert row.merge == 5 * 8 * 5  # a (5 even tokens) x b^T (5 odd tokens) over C
    assert row.norm2 == 5 * 7 * 8
    assert row.mlp == 7 * 8 * 32 + 7 * 32 * 8
    assert row.tokens_out == 7
    assert row.total == 400 + 1920 + 1600 + 640 + 200 + 280 + 3584
    # odd token count: 6 sources, 5 destinations; no merge, no similarity
    assert block_flops(0, n=11, r=1, dim=8, heads=2, hidden=32).merge == 6 * 8 * 5
    assert block_flops(0, n=11, r=0, dim=8, heads=2, hidden=32).merge == 0
    # batch scales everything
    assert block_flops(0, 10, 3, 8, 2, 32, batch=3).total == 3 * row.total


def test_tiny_model_by_hand():
    cfg = get_architecture("umt-tiny").config  # 32 px, patch 8, C=64, 4 layers, 4 heads
    assert token_count(cfg, 4) == 64
    flops = model_flops(cfg, 4, [8, 0, 0, 0])
    assert flops.patch_embed == 64 * 64 * 3 * 8 * 8
    assert flops.final_norm == 5 * 56 * 64
    assert flops.pool_norm == 5 * 64
    assert flops.head == 0
    assert [row.tokens_in for row in flops.layers] == [64, 56, 56, 56]
    assert flops.layers[0].merge == 32 * 64 * 32
    assert flops.total == flops.patch_embed + sum(r.total for r in flops.layers) + 5 * 56 * 64 + 320


def test_schedule_and_counts_agree_and_report():
    arch = get_architecture("umt-b16")
    cfg = arch.config
    schedule = schedule_for("msrvtt", arch.name, cfg.depth, token_count(cfg, 12))
    report = count_flops(cfg, 12, schedule)
    assert report.merged == count_flops(cfg, 12, schedule.rs).merged
    assert report.baseline == count_flops(cfg, 12, None).merged
    assert report.ratio == pytest.approx(report.merged / report.baseline)
    assert report.speedup == pytest.approx(1.70, abs=0.01)  # docs/design.md: ideal 1.70x for MSRVTT
    assert [row.tokens_in for row in report.layers[:4]] == [2352, 1752, 1552, 1452]
    data = report.to_dict()
    assert data["merged"] == report.merged and len(data["merged_detail"]["layers"]) == 12


def test_bad_tables_are_refused():
    cfg = get_architecture("umt-tiny").config
    with pytest.raises(ValueError, match="layers"):
        count_flops(cfg, 4, [8, 8])
    with pytest.raises(ValueError, match="resolved count"):
        count_flops(cfg, 4, [40, 0, 0, 0])  # 40 > 64 // 2
    with pytest.raises(ValueError, match="tokens"):
        count_flops(cfg, 8, resolve_schedule("8x4", cfg.depth, 64))  # resolved for 4 frames


@pytest.mark.parametrize("spec", ["none", "8x4", "0.25x2", "40,30"])
def test_matches_fvcore_on_the_paper_model(spec):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    arch = get_architecture("umt-tiny")
    cfg = arch.config
    model = PaperUMT(
        cfg, 4, parse_schedule(spec, cfg.depth, presets_for(arch.name), arch.name)
    ).eval()
    analysis = fvcore_nn.FlopCountAnalysis(model, torch.randn(1, 3, 4, 32, 32))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    counted = analysis.total()
    report = count_flops(cfg, 4, schedule_for(spec, arch.name, cfg.depth, 64))
    assert abs(report.merged - counted) / counted < 0.01
    if spec == "none":
        assert abs(report.baseline - counted) / counted < 0.01
