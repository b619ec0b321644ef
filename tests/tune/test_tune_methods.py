"""tune with labels (accuracy is the objective, drift breaks ties) and across merge methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.export.config import load_export_config
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.source import load_source
from vidtldr_deploy.tune import Budget, tune, tune_methods, write_tuned_config


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    spec = get_architecture("videomae-tiny")
    return spec.build(config=spec.config.with_(num_classes=3)).eval()


def _clips(model, n=12, seed=0):
    rng = np.random.default_rng(seed)
    side = model.cfg.img_size
    return rng.standard_normal((n, 3, model.frames, side, side)).astype(np.float32)


def test_with_labels_the_most_accurate_schedule_wins_ties_by_drift(classifier):
    clips = _clips(classifier)
    with torch.inference_mode():
        (logits,) = classifier(torch.from_numpy(clips))
    # Labels the unmerged model gets half right: merging can gain or lose accuracy.
    labels = [int(y) if i % 2 else (int(y) + 1) % 3 for i, y in enumerate(logits.argmax(-1))]
    labels[0] = None  # an unlabeled clip counts for drift only
    result = tune(classifier, clips, Budget("flops", 0.7), labels=labels)
    assert result.labeled == len(clips) - 1
    assert "accuracy" in result.objective
    fitting = [c for c in result.candidates if c.meets_budget]
    top = max(c.accuracy for c in fitting)
    assert result.best.accuracy == top
    assert result.best.drift == min(c.drift for c in fitting if c.accuracy == top)
    assert result.to_dict()["accuracy"] == top
    plain = tune(classifier, clips, Budget("flops", 0.7))
    assert plain.best.drift == min(c.drift for c in plain.candidates if c.meets_budget)
    assert "accuracy" not in plain.objective and "accuracy" not in plain.to_dict()


def test_across_methods_the_better_method_is_kept_and_exported(tmp_path):
    loaded = load_source("demo-random")
    clips = _clips(loaded.model, n=4)
    methods = [MergeMethod.VIDTLDR, MergeMethod.TOME]
    result = tune_methods(loaded.model, clips, Budget("flops", 0.7), methods, arch=loaded.arch)
    data = result.to_dict()
    assert set(data["methods"]) == {"vidtldr", "tome"}
    best = min(data["methods"].values(), key=lambda m: m["drift"])
    assert data["drift"] == best["drift"] and data["method"] in data["methods"]
    assert loaded.model.method is MergeMethod.VIDTLDR  # restored
    config = load_export_config(write_tuned_config(tmp_path / "t.toml", data))
    assert config.method == data["method"] and config.schedule == data["schedule"]
    with pytest.raises(InputError):
        tune_methods(loaded.model, clips, Budget("flops", 0.7), [MergeMethod.RANDOM])
