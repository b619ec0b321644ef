"""evaluate/: metrics on hand-checkable cases, labels, and evaluate() against the unmerged model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.tiny_models import moving_blocks, tiny_model
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.evaluate import (
    GraphTarget,
    evaluate,
    load_labels,
    match_labels,
    plot_drift,
    rs_from_metadata,
    schedule_metrics,
    schedule_string,
)
from vidtldr_deploy.evaluate import metrics as m
from vidtldr_deploy.runtime.pytorch import torch_outputs


def test_cosine_and_rel_l2_by_hand():
    ref = np.array([[1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    out = np.array([[0.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    assert m.cosine_rows(ref, out).tolist() == [0.0, 1.0, 1.0]
    np.testing.assert_allclose(m.relative_l2_rows(ref, out), [np.sqrt(5), 0.0, 0.0])


def test_kl_by_hand():
    ref = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    out = np.log(np.array([[0.25, 0.75], [0.25, 0.75]]))
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    np.testing.assert_allclose(m.kl_rows(ref, out), [expected, 0.0], atol=1e-12)
    assert m.kl_rows(ref + 7.0, ref).max() < 1e-12  # logits shift: same distribution


def test_topk_hits_by_hand():
    ref = np.array([[5.0, 1, 0, 0, 0, 0, 0], [0.0, 9, 0, 0, 0, 0, 0]])
    # clip 0: unmerged class 0 ranks 3rd in the merged logits; clip 1: ranks 6th
    out = np.array([[2.0, 3, 4, 1, 0, 0, 0], [9.0, 0, 8, 7, 6, 5, 1]])
    assert m.topk_hits(ref, out, 1).tolist() == [0.0, 0.0]
    assert m.topk_hits(ref, out, 3).tolist() == [1.0, 0.0]
    assert m.topk_hits(ref, out, 5).tolist() == [1.0, 0.0]
    assert m.topk_hits(ref, ref, 1).tolist() == [1.0, 1.0]


def test_retrieval_recall_on_constructed_embeddings():
    gallery = np.eye(6)
    queries = np.eye(6)
    queries[1] = gallery[2]  # clip 1 now looks exactly like clip 2: rank 1 (clip 2 is better)
    queries[3] = 0.6 * gallery[3] + 0.8 * gallery[4]  # nearer clip 4 than itself: rank 1
    queries[5] = gallery[5] + 0.1 * gallery[0]  # still nearest itself
    ranks = m.retrieval_ranks(gallery, queries)
    assert ranks.tolist() == [0, 1, 0, 1, 0, 0]
    assert m.recall_at(ranks, 1) == pytest.approx(4 / 6)
    assert m.recall_at(ranks, 5) == 1.0


def test_schedule_metrics_with_labels():
    ref = np.array([[3.0, 0, 0], [0.0, 3, 0], [0.0, 0, 3]])
    out = np.array([[3.0, 0, 0], [3.0, 0, 0], [0.0, 0, 3]])
    summary, per_clip = schedule_metrics(["a", "b", "c"], ref, out, True, [0, 1, None])
    assert summary.top1_agreement == pytest.approx(2 / 3)
    assert summary.accuracy == 0.5 and summary.baseline_accuracy == 1.0 and summary.labeled == 2
    assert "correct" not in per_clip[2].to_dict()
    assert per_clip[1].to_dict()["correct"] == 0.0


def test_load_labels_and_match(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("path,label\nvideos/a.mp4,3\n/data/b.mp4,7\n\n")
    labels = load_labels(path)
    assert labels == {"videos/a.mp4": 3, "/data/b.mp4": 7}
    assert match_labels(["videos/a.mp4", "b.mp4", "c.mp4"], labels) == [3, 7, None]
    assert match_labels(["b"], labels) == [7]  # by stem, where it is unique
    path.write_text("a.mp4,3\nb.mp4,cat\n")
    with pytest.raises(VidTLDRError, match="not an integer"):
        load_labels(path)


@pytest.fixture(scope="module")
def encoder():
    return tiny_model()


@pytest.fixture(scope="module")
def clips():
    return moving_blocks(6, seed=1)


def test_none_is_the_reference_exactly(encoder, clips):
    names = [f"c{i}" for i in range(len(clips))]
    result = evaluate(encoder, clips, names, ["none", "16,8"], arch="umt-tiny")
    none, merged = result.schedules
    assert none.metrics.cosine_mean == 1.0 and none.metrics.rel_l2_mean == 0.0
    assert none.metrics.recall_at_1 == 1.0 and none.flops.ratio == 1.0
    assert merged.metrics.cosine_mean < 1.0 and merged.flops.ratio < 1.0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["kind"] == "evaluate" and data["clips"] == {"count": 6, "names": names}
    assert data["schedules"][1]["spec"]["layers"][0]["r"] == 16
    assert set(data["schedules"][1]["metrics"]) >= {"cosine_mean", "recall_at_1", "recall_at_5"}
    assert len(data["schedules"][1]["per_clip"]) == 6


def test_batches_stream_and_classifier_agreement(clips, tmp_path):
    model = tiny_model(num_classes=7)
    names = [f"clip{i}.mp4" for i in range(len(clips))]
    labels = {n: i % 7 for i, n in enumerate(names)}
    result = evaluate(model, [clips[:4], clips[4:]], names, ["none", "0.5x2"], labels=labels)
    none, merged = result.schedules
    assert result.output == "logits"
    assert none.metrics.top1_agreement == 1.0 and none.metrics.top5_agreement == 1.0
    assert none.metrics.kl_mean == 0.0
    assert none.metrics.accuracy == none.metrics.baseline_accuracy
    assert merged.metrics.kl_mean > 0
    assert plot_drift(result.to_dict(), tmp_path / "drift.png").stat().st_size > 0


class FakeGraph:
    """A runner with a static batch of 4 that computes the torch model under a baked schedule."""

    input_shape = (4, 3, 4, 32, 32)

    def __init__(self, model, rs):
        self.model, self.rs, self.calls = model, rs, 0

    def run(self, video):
        assert video.shape == self.input_shape
        self.calls += 1
        return {"pooled": torch_outputs(self.model, self.rs, video)["pooled"]}


def test_graph_target_uses_its_own_schedule(encoder, clips):
    graph = FakeGraph(encoder, [16, 8, 0, 0])
    meta = {
        "schedule": json.dumps(
            {"spec": "16,8", "layers": [{"r": 16}, {"r": 8}, {"r": 0}, {"r": 0}]}
        )
    }
    target = GraphTarget(graph, rs_from_metadata(meta), label="onnx")
    names = [f"c{i}" for i in range(len(clips))]
    result = evaluate(encoder, clips, names, [target, "16,8"])
    graph_eval, torch_eval = result.schedules
    assert graph.calls == 2  # 6 clips in chunks of 4, the last one padded
    assert graph_eval.runtime == "graph" and graph_eval.schedule.rs == [16, 8, 0, 0]
    assert schedule_string(target.rs) == "16,8"
    assert graph_eval.metrics.cosine_mean == pytest.approx(torch_eval.metrics.cosine_mean, abs=1e-6)
    assert graph_eval.flops.merged == torch_eval.flops.merged
