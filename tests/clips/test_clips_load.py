from __future__ import annotations

import numpy as np
import pytest

import vidtldr_deploy.clips.loader as loader
from support.videos import (
    VIDEO_CASES,
    encoder_available,
    write_audio_only,
    write_garbage,
    write_video,
)
from vidtldr_deploy.clips import ClipBatch, load_clips, make_batches, recipe_for
from vidtldr_deploy.errors import VidTLDRError

pytestmark = pytest.mark.video

T, SIZE = 4, 32
RECIPE = recipe_for("umt", image_size=SIZE)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five good clips of different lengths and containers, nested one level."""
    root = tmp_path_factory.mktemp("videos")
    cases = [c for c in VIDEO_CASES if encoder_available(c.codec)]
    for i, n in enumerate([12, 20, 10, 16, 24]):
        case = cases[i % len(cases)]
        sub = root / ("nested" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        write_video(sub / f"clip{i}{case.suffix}", n, case)
    return root


def test_folder_to_batches_with_a_remainder(folder):
    seen = []
    clips = load_clips([folder], RECIPE, T, 2, progress=lambda *a: seen.append(a))
    assert clips.count == 5 and not clips.skipped
    assert [b.valid for b in clips.batches] == [2, 2, 1]
    assert all(b.video.shape == (2, 3, T, SIZE, SIZE) for b in clips.batches)
    assert all(b.video.dtype == np.float32 for b in clips.batches)
    assert sum((b.names for b in clips.batches), []) == clips.names
    assert [n.rsplit("/", 1)[-1].split(".")[0] for n in clips.names] == [
        "clip0",
        "clip2",
        "clip4",
        "clip1",
        "clip3",  # sorted: top level first, then nested/
    ]
    last = clips.batches[-1]
    assert last.mask.tolist() == [True, False]
    np.testing.assert_array_equal(last.video[1], last.video[0])  # padding repeats the last clip
    assert [s[:2] for s in seen] == [(i, 5) for i in range(1, 6)]
    assert "5 clips" in clips.label and "T=4" in clips.label and "umt" in clips.label


def test_single_video_matches_its_batch_and_runs_are_deterministic(folder):
    a = load_clips([folder], RECIPE, T, 8)
    b = load_clips([folder], "umt-tiny", T, 8)  # an architecture name: umt at 32 px
    assert len(a.batches) == 1 and a.batches[0].valid == 5
    np.testing.assert_array_equal(a.batches[0].video, b.batches[0].video)
    one = load_clips([a.names[0]], RECIPE, T, 1)
    np.testing.assert_array_equal(one.batches[0].video[0], a.batches[0].video[0])


def test_make_batches_zero_padding_and_exact_fit():
    clips = [np.full((3, 2, 4, 4), i, np.float32) for i in range(1, 4)]
    names = ["a", "b", "c"]
    padded = make_batches(clips, names, 4, pad="zeros")
    assert len(padded) == 1 and padded[0].valid == 3 and padded[0].names == names
    assert not padded[0].video[3].any()
    assert padded[0].real(np.arange(4)).tolist() == [0, 1, 2]
    exact = make_batches(clips, names, 3)
    assert [b.valid for b in exact] == [3] and exact[0].mask.all()
    with pytest.raises(VidTLDRError):
        make_batches(clips, names, 0)
    assert isinstance(exact[0], ClipBatch)


@pytest.fixture()
def bad_files(tmp_path):
    return [
        write_garbage(tmp_path / "random.mp4"),
        write_audio_only(tmp_path / "audio.mp4"),
        write_video(tmp_path / "short.avi", 3),
    ]


def test_bad_clips_raise_naming_the_file(folder, bad_files):
    for bad in bad_files:
        with pytest.raises(VidTLDRError, match=bad.name):
            load_clips([folder, bad], RECIPE, T, 2)


def test_skip_bad_counts_and_explains(folder, bad_files):
    clips = load_clips([*bad_files, folder], RECIPE, T, 2, skip_bad=True)
    assert clips.count == 5 and clips.skipped_count == 3
    reasons = {s.name.rsplit("/", 1)[-1]: s.reason for s in clips.skipped}
    assert "cannot open" in reasons["random.mp4"]
    assert "no video stream" in reasons["audio.mp4"]
    assert "3 frames, fewer than the 4" in reasons["short.avi"]
    assert len(clips.warnings()) == 3 and "3 skipped" in clips.label
    with pytest.raises(VidTLDRError, match="no usable clips"):
        load_clips(bad_files, RECIPE, T, 2, skip_bad=True)


def test_path_errors_raise_even_with_skip_bad(tmp_path):
    with pytest.raises(VidTLDRError, match="does not exist"):
        load_clips([tmp_path / "missing.mp4"], RECIPE, T, 2, skip_bad=True)
    with pytest.raises(VidTLDRError, match="holds no video files"):
        load_clips([tmp_path], RECIPE, T, 2, skip_bad=True)


def test_cache_round_trip_does_not_decode_again(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"  # created on first use
    first = load_clips([folder], RECIPE, T, 2, cache_dir=cache)
    assert first.cache_hits == 0 and len(list(cache.glob("*.npz"))) == 5
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporaries left

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(loader, "sample_frames", no_decoding)
    second = load_clips([folder], RECIPE, T, 2, cache_dir=cache)
    assert second.cache_hits == 5 and second.names == first.names
    for a, b in zip(first.batches, second.batches):
        np.testing.assert_array_equal(a.video, b.video)
    # Another T or recipe is another key: it must decode (and here, fail loudly).
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_clips([folder], RECIPE, T + 1, 2, cache_dir=cache)
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_clips([folder], recipe_for("videomae", image_size=SIZE), T, 2, cache_dir=cache)


def test_damaged_cache_entry_is_a_miss(tmp_path):
    video = write_video(tmp_path / "clip.avi", 12)
    cache = tmp_path / "cache"
    first = load_clips([video], RECIPE, T, 1, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"damaged")
    again = load_clips([video], RECIPE, T, 1, cache_dir=cache)
    assert again.cache_hits == 0
    np.testing.assert_array_equal(again.batches[0].video, first.batches[0].video)
    assert load_clips([video], RECIPE, T, 1, cache_dir=cache).cache_hits == 1


def test_arrays_are_clips_as_today(tmp_path, folder):
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((2, 3, T, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "one.npy", batch)
    np.savez(tmp_path / "many.npz", a=batch, b=batch[::-1])
    clips = load_clips([tmp_path / "one.npy", tmp_path / "many.npz"], RECIPE, T, 2)
    assert [b.valid for b in clips.batches] == [2, 2, 2]
    np.testing.assert_array_equal(clips.batches[0].video, batch)
    np.testing.assert_array_equal(clips.batches[2].video, batch[::-1])
    assert clips.names[2].endswith("many.npz:a[0]")
    # Arrays and videos mix: rows are re-batched in order.
    mixed = load_clips([tmp_path / "one.npy", folder], RECIPE, T, 4)
    assert [b.valid for b in mixed.batches] == [4, 3]
    np.save(tmp_path / "wrong.npy", batch[:, :, :2])
    with pytest.raises(VidTLDRError, match=r"wrong.npy: clips of shape \(2, 3, 2, 32, 32\)"):
        load_clips([tmp_path / "wrong.npy"], RECIPE, T, 2)


def test_decode_clip_from_bytes_equals_the_file(tmp_path):
    from support.videos import write_video
    from vidtldr_deploy.clips import decode_clip, load_video_clip, recipe_for

    path = write_video(tmp_path / "clip.mp4", 20)
    recipe = recipe_for("umt-tiny")
    np.testing.assert_array_equal(
        decode_clip(path.read_bytes(), "umt-tiny", 4), load_video_clip(path, recipe, 4)
    )
    np.testing.assert_array_equal(decode_clip(path, recipe, 4), load_video_clip(path, recipe, 4))
