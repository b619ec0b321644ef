"""ToMe beside vid-TLDR through export, validation and evaluation, and the random baseline kept
out of graphs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.core.merge import bipartite_merge, random_merge
from vidtldr_deploy.export.merge_islands import island_nodes
from vidtldr_deploy.export.metadata import read_metadata
from vidtldr_deploy.models.source import load_source


def _parts(path) -> list[str]:
    """The merge-island part ("saliency" or "merge") of every island node of the graph."""
    return [n.part for n in island_nodes(onnx.load(str(path)))]


def test_tome_is_the_vidtldr_merge_with_every_score_one():
    torch.manual_seed(0)
    x, size = torch.randn(2, 16, 8), torch.rand(2, 16) + 0.5
    model = load_source("demo-random").model
    video = torch.randn(1, 3, model.frames, model.cfg.img_size, model.cfg.img_size)
    with torch.inference_mode():
        with model.scheduled([4, 4, 0, 0], method="tome"):
            (tome,) = model(video)[1:]
        with model.scheduled([4, 4, 0, 0], method="vidtldr"):
            (vid,) = model(video)[1:]
    assert not torch.allclose(tome, vid)  # the saliency weighting changes the result
    ones = bipartite_merge(x, size, torch.ones(2, 16), 3)
    half = bipartite_merge(x, size, torch.full((2, 16), 0.5), 3)
    assert not torch.allclose(ones[1], half[1])  # mass follows the score: 1 keeps it whole
    assert torch.allclose(ones[1].sum(1), size.sum(1))


def test_random_merge_keeps_counts_and_mass_and_is_seeded():
    x, size = torch.randn(2, 16, 8), torch.ones(2, 16)
    a = random_merge(x, size, 5, torch.Generator().manual_seed(1))
    b = random_merge(x, size, 5, torch.Generator().manual_seed(1))
    c = random_merge(x, size, 5, torch.Generator().manual_seed(2))
    assert a[0].shape == (2, 11, 8) and torch.equal(a[0], b[0])
    assert torch.allclose(a[1].sum(1), size.sum(1))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("impl", ["onnx", "plugin"])
def test_tome_exports_without_a_saliency_step_and_validates(cli, tmp_path, impl):
    out = tmp_path / f"tome-{impl}.onnx"
    result = cli("export", "demo-random", "--method", "tome", "--merge-impl", impl, "-o", out,
                 "--report", tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_metadata(onnx.load(str(out)))["method"] == "tome"
    vid = tmp_path / f"vid-{impl}.onnx"
    exported = cli("export", "demo-random", "--merge-impl", impl, "-o", vid, "--no-validate")
    assert exported.exit_code == 0
    assert "merge" in _parts(out) and "saliency" not in _parts(out)
    assert "saliency" in _parts(vid)
    # validate reads the method back: the ToMe graph matches ToMe in PyTorch, not vid-TLDR
    check = cli("validate", out, "--report", tmp_path / "v.json")
    assert check.exit_code == 0, check.output


def test_a_graph_whose_method_does_not_match_fails_validation(cli, tmp_path):
    out = tmp_path / "tome.onnx"
    assert (
        cli("export", "demo-random", "--method", "tome", "-o", out, "--no-validate").exit_code == 0
    )
    model = onnx.load(str(out))
    for prop in model.metadata_props:
        if prop.key == "vidtldr.method":
            prop.value = "vidtldr"
    onnx.save(model, str(out))
    result = cli("validate", out)
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize("method", ["random", "tomme"])
def test_export_refuses_methods_it_cannot_export(cli, tmp_path, method):
    out = tmp_path / "m.onnx"
    result = cli("export", "demo-random", "--method", method, "-o", out)
    assert result.exit_code == 2 and not out.exists()


def test_evaluate_compares_methods_side_by_side(cli, tmp_path):
    report = tmp_path / "ev.json"
    clips = tmp_path / "clips.npz"
    model = load_source("demo-random").model
    rng = np.random.default_rng(0)
    np.savez(clips, x=rng.standard_normal((3, 3, model.frames, 32, 32)).astype(np.float32))
    result = cli("evaluate", "demo-random", "--clips", clips, "-s", "0.25x2",
                 *sum((["--method", m.value] for m in MergeMethod), []), "--report", report)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(report.read_text())["schedules"]
    assert [r["method"] for r in rows] == ["vidtldr", "tome", "random"]
    cos = [r["metrics"]["cosine_mean"] for r in rows]
    assert len(set(cos)) == 3  # three different merges
