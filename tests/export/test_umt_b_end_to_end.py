"""The issue's acceptance check at full size: an official-format UMT-B checkpoint exported with
`--frames 4 --batch 2 --schedule 300,100`, both merge impls, against the independent paper model.

UMT-B at 4 frames (784 tokens) is the one full-width model in the suite: about a minute per impl.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from support.paper_reference import PaperUMT
from vidtldr_deploy.cli.main import app
from vidtldr_deploy.models.registry import get_architecture


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    """Random UMT-B weights (UMT's own xavier init) saved as the official training code saves
    them: the whole multi-modal model under 'model', vision tower under vision_encoder.encoder."""
    torch.manual_seed(0)
    model = get_architecture("umt-b16").build(4)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight)
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.02 * torch.randn_like(p))
    state = {
        ("vision_encoder." if k.startswith("pool_norm") else "vision_encoder.encoder.") + k: v
        for k, v in model.state_dict().items()
    }
    state["vision_encoder.clip_decoder.0.head.weight"] = torch.zeros(512, 768)
    state["text_encoder.embeddings.word_embeddings.weight"] = torch.zeros(16, 8)
    path = tmp_path_factory.mktemp("umt") / "umt_b16_official.pth"
    torch.save({"model": state, "epoch": 9}, path)
    return path, model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("merge_impl", ["onnx", "plugin"])
def test_umt_b_export_matches_paper_model(official_checkpoint, tmp_path, merge_impl):
    path, weights = official_checkpoint
    out = tmp_path / f"umt_b_{merge_impl}.onnx"
    result = CliRunner().invoke(app, [
        "export", str(path), "--frames", "4", "--batch", "2", "--schedule", "300,100",
        "--merge-impl", merge_impl, "-o", str(out), "--no-validate",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "umt-b16 (inferred from the checkpoint)" in result.output

    video = torch.randn(2, 3, 4, 224, 224, generator=torch.Generator().manual_seed(5))
    tokens, pooled = ort.InferenceSession(str(out)).run(None, {"video": video.numpy()})
    paper = PaperUMT(get_architecture("umt-b16").config, 4, [300, 100])
    paper.load_state_dict(weights)
    with torch.no_grad():
        ref_tokens, ref_pooled = (t.numpy() for t in paper.eval()(video))

    assert tokens.shape == ref_tokens.shape == (2, 784 - 400, 768)
    assert np.abs(tokens - ref_tokens).max() < 1e-3
    assert np.abs(pooled - ref_pooled).max() < 1e-3
    cos = (
        (pooled * ref_pooled).sum(-1)
        / np.linalg.norm(pooled, axis=-1)
        / np.linalg.norm(ref_pooled, axis=-1)
    )
    assert cos.min() >= 0.99999
