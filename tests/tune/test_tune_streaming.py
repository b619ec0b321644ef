"""tune reads its clips a chunk at a time from disk, with a bounded activation cache: peak memory
does not grow with the number of clips, and the result is the one of holding them all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from support.peak_memory import demo_clips, peak_mib
from support.tiny_models import moving_blocks, tiny_model
from vidtldr_deploy.clips import SpilledClips
from vidtldr_deploy.tune import Budget, PrefixRunner, SearchOptions, tune

PRESETS = {"a": [16, 8], "b": [8, 8, 8]}


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_model(num_classes=3)


def _spilled(clips: np.ndarray, size: int) -> SpilledClips:
    spilled = SpilledClips()
    for i in range(0, len(clips), size):
        spilled.append(clips[i : i + size])
    return spilled


def test_chunks_on_disk_give_the_result_of_the_clips_in_memory(model):
    clips = moving_blocks(7)
    with torch.inference_mode():
        (logits,) = model(torch.from_numpy(clips))
    # labels across chunk boundaries, one clip unlabeled, some wrong: accuracy is the objective
    labels = [int(y) if i % 3 else (int(y) + 1) % 3 for i, y in enumerate(logits.argmax(-1))]
    labels[4] = None
    options = SearchOptions(cache_mib=1)
    whole = tune(model, clips, Budget("flops", 0.6), presets=PRESETS, labels=labels)
    with _spilled(clips, 3) as spilled:
        assert len(spilled) == 3 and spilled.count == 7
        chunked = tune(model, spilled, Budget("flops", 0.6), presets=PRESETS, labels=labels,
                       options=options)  # fmt: skip
        folder = spilled._path(0).parent
    assert not folder.exists()  # the spilled clips are removed with their context
    assert chunked.chunks == 3 and whole.chunks == 1
    assert chunked.schedule == whole.schedule and chunked.labeled == whole.labeled == 6
    assert [c.rs for c in chunked.candidates] == [c.rs for c in whole.candidates]
    np.testing.assert_allclose([c.drift for c in chunked.candidates],
                               [c.drift for c in whole.candidates], rtol=1e-5, atol=1e-9)  # fmt: skip
    assert [c.accuracy for c in chunked.candidates] == [c.accuracy for c in whole.candidates]
    assert chunked.baseline_accuracy == whole.baseline_accuracy


def test_the_activation_cache_stays_within_its_bound_over_many_chunks(model):
    clips = moving_blocks(8)
    bound = 200_000
    runner = PrefixRunner(model, torch.from_numpy(clips), max_cache_bytes=bound, chunk=2)
    state = runner.state([0] * model.cfg.depth)
    assert len(runner.chunks) == 4
    one = state.nbytes  # the largest state there is: no merge
    for rs in ([0, 0, 0, 0], [8, 0, 0, 0], [8, 8, 0, 0], [16, 8, 4, 0], [0, 16, 8, 0]):
        merged = runner.output(rs)
        assert runner.cached_bytes <= bound + one
        model.set_schedule(rs)
        with torch.inference_mode():
            direct = model(torch.from_numpy(clips))[0].numpy()
        model.set_schedule([0] * model.cfg.depth)
        np.testing.assert_allclose(merged, direct, rtol=1e-5, atol=1e-5)


def test_tune_peak_memory_does_not_grow_with_the_clips(tmp_path):
    # Before, every clip and its cached states stayed in memory: 296 -> 448 MiB from 10 to 200.
    few, many = demo_clips(tmp_path / "few.npz", 10), demo_clips(tmp_path / "many.npz", 200)
    args = ("tune", "demo-random", "--target-flops", "0.7", "--beam-width", "1",
            "--clip-batch", "16", "--activation-mib", "4", "--report")  # fmt: skip
    peak_few = peak_mib(*args, str(tmp_path / "few.json"), "--clips", few)
    peak_many = peak_mib(*args, str(tmp_path / "many.json"), "--clips", many)
    assert peak_many - peak_few < 25, (peak_few, peak_many)
    report = json.loads((tmp_path / "many.json").read_text())
    assert report["clips"]["count"] == 200 and report["meets_budget"]
