"""The demo's synthetic task: deterministic files, labels `evaluate --labels` reads, and masks that
are where the marked square is."""

from __future__ import annotations

import numpy as np
import pytest

from support.videos import VIDEO_CASES, encoder_available, write_video
from vidtldr_deploy.clips.synthetic import (
    _COLOURS,
    BORDER,
    CLASSES,
    MARKED_SIDE,
    render_clip,
    write_task,
)
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.evaluate.labels import load_labels, match_labels

pytestmark = pytest.mark.video


def test_task_files_are_byte_identical_run_to_run(tmp_path):
    a = write_task(tmp_path / "a", 3, seed=7)
    b = write_task(tmp_path / "b", 3, seed=7)
    for x, y in zip(a.videos + [a.labels_csv], b.videos + [b.labels_csv]):
        assert x.read_bytes() == y.read_bytes(), x.name
    other = write_task(tmp_path / "c", 1, seed=8)
    assert other.videos[0].read_bytes() != a.videos[0].read_bytes()


@pytest.mark.parametrize("case", VIDEO_CASES, ids=lambda c: c.id)
def test_video_fixtures_are_byte_identical_run_to_run(tmp_path, case):
    if not encoder_available(case.codec):
        pytest.skip(f"{case.codec} encoder not in this FFmpeg build")
    a = write_video(tmp_path / f"a{case.suffix}", 12, case).read_bytes()
    b = write_video(tmp_path / f"b{case.suffix}", 12, case).read_bytes()
    assert a == b


def test_labels_csv_is_what_evaluate_reads(tmp_path):
    made = write_task(tmp_path, 6, seed=3)
    labels = load_labels(made.labels_csv)
    names = [str(v) for v in made.videos]  # the loader names clips by path
    assert match_labels(names, labels) == made.labels
    assert set(made.labels) <= set(range(len(CLASSES)))
    masks = np.load(made.masks_npz)
    assert sorted(masks.files) == sorted(v.stem for v in made.videos)


def test_clip_is_a_function_of_seed_and_index_alone():
    a, b = render_clip(4, 9), render_clip(4, 9)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(render_clip(4, 10).frames, a.frames)


def test_mask_covers_the_marked_square_and_only_it():
    for index in range(20):
        clip = render_clip(0, index)
        frames, mask = clip.frames.astype(int), clip.mask
        assert mask.any(axis=(1, 2)).sum() >= len(mask) // 2  # mostly visible
        # The white border is the only pure white; every white pixel is in the mask, and the
        # mask is never larger than the square.
        white = (frames == 255).all(-1)
        assert np.array_equal(white & mask, white)
        assert mask.sum(axis=(1, 2)).max() <= MARKED_SIDE**2
        # Inside the border, the visible pixels have the label's colour (within the jitter).
        inner = mask & ~white
        if inner.any():
            colour = frames[inner].mean(0)
            nearest = np.abs(_COLOURS - colour).sum(1).argmin()
            assert nearest == clip.label, (index, colour)
    assert BORDER < MARKED_SIDE // 2


def test_write_task_refuses_bad_counts_and_files(tmp_path):
    with pytest.raises(InputError):
        write_task(tmp_path, 0)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError):
        write_task(target, 1)
    assert target.read_text() == "x"
