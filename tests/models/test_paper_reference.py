"""MergeViT (reference merge) against an independent implementation of the paper's model."""

from __future__ import annotations

import pytest
import torch

from support.paper_reference import PaperUMT, objective_score, vid_tldr
from vidtldr_deploy.core.schedule import parse_schedule
from vidtldr_deploy.models.presets import presets_for, schedule_for
from vidtldr_deploy.models.registry import get_architecture

FRAMES = 4


def _pair(spec: str, seed: int = 0):
    arch = get_architecture("umt-tiny")
    cfg = arch.config
    torch.manual_seed(seed)
    model = arch.build(frames=FRAMES).eval()
    with torch.no_grad():  # non-trivial weights everywhere, norms and q/v biases included
        for p in model.parameters():
            p.normal_(0.0, 0.3 if p.ndim > 1 else 0.5)
    schedule = schedule_for(spec, arch.name, cfg.depth, model.num_tokens)
    model.set_schedule(schedule.rs)
    paper = PaperUMT(
        cfg, FRAMES, parse_schedule(spec, cfg.depth, presets_for(arch.name), arch.name)
    ).eval()
    paper.load_state_dict(model.state_dict(), strict=True)
    return model, paper, schedule


@pytest.mark.parametrize("spec", ["none", "8x4", "0.25x2", "40,30", "16,8,4,2", "0.5,0.5,0.5,0.5"])
def test_mergevit_matches_paper_model(spec):
    model, paper, schedule = _pair(spec)
    video = torch.randn(2, 3, FRAMES, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens, pooled = model(video)
        ref_tokens, ref_pooled = paper(video)
    assert tokens.shape == ref_tokens.shape == (2, schedule.tokens_out, 64)
    assert pooled.shape == ref_pooled.shape == (2, 64)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=0)


def test_clamped_schedule_is_resolved_the_same_way():
    _, _, schedule = _pair("40,30")
    assert schedule.rs[:2] == [32, 16]
    assert [row.clamped for row in schedule.layers[:2]] == [True, True]


def test_paper_model_stays_finite_on_degenerate_input():
    # Every token equal (zero video, no positions): uniform attention, constant entropy, and ties
    # in every similarity, where the published code divides 0 by 0.
    model, paper, _ = _pair("8x4")
    model.pos_embed.zero_()
    paper.pos_embed.zero_()
    video = torch.zeros(1, 3, FRAMES, 32, 32)
    with torch.no_grad():
        tokens, pooled = paper(video)
        ours, ours_pooled = model(video)
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()
    torch.testing.assert_close(ours, tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_pooled, pooled, atol=1e-5, rtol=0)


def test_objective_score_rules():
    uniform = torch.full((1, 2, 4, 4), 0.25)
    assert torch.equal(objective_score(uniform), torch.ones(1, 4, 1))
    peaked = torch.eye(4).expand(1, 2, 4, 4).clone()  # one-hot rows: 0 log 0 = 0
    peaked[0, :, 0] = 0.25  # token 0 diffuse -> background
    s = objective_score(peaked)
    assert torch.isfinite(s).all()
    assert s[0, 0, 0] == 0 and torch.allclose(s[0, 1:, 0], torch.ones(3))


def test_merge_is_size_weighted_and_drops_background():
    # 4 tokens: a = {0, 2}, b = {1, 3}; token 0 matches 1, token 2 matches 3 best.
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]]])
    size = torch.tensor([[[1.0], [3.0], [2.0], [1.0]]])
    attn0 = torch.full((1, 1, 4, 4), 0.25)  # constant entropy -> every score 1
    out, new_size = vid_tldr(x, size, attn0, 2)
    assert out.shape == (1, 2, 2) and new_size.shape == (1, 2, 1)
    torch.testing.assert_close(new_size[0, :, 0], torch.tensor([4.0, 3.0]))
    torch.testing.assert_close(out[0, 0], (3 * x[0, 1] + 1 * x[0, 0]) / 4)
    torch.testing.assert_close(out[0, 1], (1 * x[0, 3] + 2 * x[0, 2]) / 3)
