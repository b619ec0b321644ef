"""The shipped demo model on fresh held-out clips of its task: it is accurate, merging keeps the
accuracy at the default schedule and about 0.6 of the FLOPs, matched merging (vid-TLDR, ToMe)
beats random merging at an aggressive budget, and where the first merge layer's saliency falls.

Clips, weights and code are deterministic: the bounds below are the measured values with room for
a clip or two of floating-point difference between machines."""

from __future__ import annotations

import json

import pytest

from vidtldr_deploy.constants import DEMO_SCHEDULE, MergeMethod
from vidtldr_deploy.evaluate import MethodSchedule, evaluate
from vidtldr_deploy.evaluate.saliency_overlap import saliency_overlap, task_clips
from vidtldr_deploy.models.source import load_source

pytestmark = pytest.mark.video

TEST_SEED = 11  # a set of its own: never trained on (1), selected on (2) or shown by the CLI (3)
CLIPS = 96


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    loaded = load_source("demo")
    made = task_clips(tmp_path_factory.mktemp("task"), CLIPS, TEST_SEED, loaded.model)
    return loaded, made.clips, made.names, made.labels, made.object_tokens


# Measured on set TEST_SEED with the shipped weights (96 clips; benchmarks/bench_accuracy.py
# gives the full table): unmerged 0.958; 0.25x2 (0.593 FLOPs) and 32x6 (0.615) keep
# 0.958; at 0.4x3 (0.364 FLOPs) vid-TLDR 0.948, ToMe 0.958, random pairs 0.667; at 0.5x2 (0.343)
# vid-TLDR 0.708, ToMe 0.885. The bounds leave a clip or two for floating-point differences
# between machines, nothing more.
UNMERGED_MIN = 0.93
SIXTY = "32x6"
KEPT_DROP = 0.025
AGGRESSIVE, AGGRESSIVE_FLOPS, RANDOM_GAP = "0.4x3", 0.37, 0.15
SEPARATES, TOME_GAP = "0.5x2", 0.1


@pytest.fixture(scope="module")
def accuracy(task):
    """{schedule label: (accuracy, FLOPs ratio)} of every schedule the tests below look at, in one
    pass over the clips."""
    loaded, clips, names, labels, _ = task
    targets = ["none", DEMO_SCHEDULE, SIXTY]
    targets += [MethodSchedule(AGGRESSIVE, m) for m in MergeMethod]
    targets += [MethodSchedule(SEPARATES, m) for m in (MergeMethod.VIDTLDR, MergeMethod.TOME)]
    result = evaluate(loaded.model, clips, names, targets, arch=loaded.arch, labels=labels)
    return {s.label: (s.metrics.accuracy, s.flops.ratio) for s in result.schedules}


def test_unmerged_accuracy_on_fresh_held_out_clips(accuracy):
    acc = accuracy["none"][0]
    assert UNMERGED_MIN <= acc < 1.0, acc  # accurate, and the task is not trivial


def test_default_schedule_and_0_6_flops_keep_accuracy(accuracy):
    base = accuracy["none"][0]
    for spec in (DEMO_SCHEDULE, SIXTY):
        acc, flops = accuracy[spec]
        assert 0.55 <= flops <= 0.62, (spec, flops)
        assert acc >= base - KEPT_DROP, (spec, acc, base)


def test_matched_merging_beats_random_merging_at_an_aggressive_budget(accuracy):
    vidtldr, flops = accuracy[AGGRESSIVE]
    tome = accuracy[f"{AGGRESSIVE} (tome)"][0]
    random = accuracy[f"{AGGRESSIVE} (random)"][0]
    assert flops <= AGGRESSIVE_FLOPS
    assert vidtldr >= random + RANDOM_GAP, (vidtldr, random)
    assert tome >= random + RANDOM_GAP, (tome, random)


def test_on_this_task_tome_keeps_more_than_vidtldr_when_merging_early(accuracy):
    """What was measured, not what the paper finds on its models: the saliency steers merging
    away from the object's tokens poorly here (see the saliency test), and merging half the
    tokens in the first layers costs vid-TLDR more than ToMe."""
    vidtldr = accuracy[SEPARATES][0]
    tome = accuracy[f"{SEPARATES} (tome)"][0]
    assert tome >= vidtldr + TOME_GAP, (tome, vidtldr)


def test_first_merge_layer_saliency_falls_off_the_object_on_this_task(task):
    """The share of the 16 most salient tokens of layer 0 that overlap the marked square was 0.028
    against 0.095 for all tokens (0.29x chance): on this model the saliency does not find the
    object. A saliency that ignored the attention (constant or random scores) would sit at chance
    and fail this; one that found the object would fail it too, and should change this test."""
    loaded, clips, _, _, objects = task
    overlap = saliency_overlap(loaded.model, clips, objects, layer=0, top_k=16)
    assert 0.05 < overlap.chance < 0.2  # the object is a small part of the frame
    assert overlap.on_object <= 0.5 * overlap.chance, overlap.to_dict()


def test_shipped_weights_are_what_transformers_computes():
    transformers = pytest.importorskip("transformers")
    import torch

    from vidtldr_deploy.models.demo_model import DEMO_WEIGHTS

    hf = transformers.VideoMAEForVideoClassification.from_pretrained(str(DEMO_WEIGHTS)).eval()
    ours = load_source("demo").model
    video = torch.randn(2, 3, ours.frames, ours.cfg.img_size, ours.cfg.img_size)
    with torch.inference_mode():
        expected = hf(pixel_values=video.transpose(1, 2)).logits
        (got,) = ours(video)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    record = json.loads((DEMO_WEIGHTS / "training.json").read_text())
    assert record["held_out_accuracy"] >= 0.95


def test_bench_accuracy_smoke(tmp_path, monkeypatch):
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    bench = importlib.import_module("bench_accuracy")
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    assert bench.main(["--smoke", "-o", str(out), "--plot", str(png)]) == 0
    data = json.loads(out.read_text())
    methods = {r["method"] for r in data["rows"]}
    assert methods == {m.value for m in MergeMethod} and png.stat().st_size > 0
    assert len(data["rows"]) == 3 * len(bench.SMOKE_SCHEDULES)
    assert 0 < data["saliency_overlap"][0]["chance"] < 1
    sys.modules.pop("bench_accuracy", None)


def test_evaluate_demo_without_clips_shows_real_accuracy(cli, tmp_path):
    report = tmp_path / "ev.json"
    result = cli("evaluate", "demo", "-s", "0.25x2", "--report", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    metrics = data["schedules"][0]["metrics"]
    assert metrics["labeled"] == data["clips"]["count"] > 0
    assert metrics["baseline_accuracy"] >= UNMERGED_MIN
    assert not list(tmp_path.glob("vidtldr-demo-clips-*"))


def test_the_demo_graph_validates_against_the_shipped_weights(cli, tmp_path):
    graph = tmp_path / "demo.onnx"
    result = cli("export", "demo", "-o", graph, "--num-inputs", "1")
    assert result.exit_code == 0, result.output
    import onnx

    from vidtldr_deploy.export.metadata import read_metadata

    meta = read_metadata(onnx.load(str(graph)))
    assert meta["checkpoint"] == "demo" and meta["checkpoint_sha256"]
    assert cli("validate", graph).exit_code == 0
