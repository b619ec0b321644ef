from __future__ import annotations

import numpy as np
import pytest

from support.videos import write_video
from vidtldr_deploy.clips import preprocess, recipe_for, sample_frames
from vidtldr_deploy.clips.preprocess import short_side_size


def _frames(t, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, height, width, 3), dtype=np.uint8)


def test_shape_dtype_and_normalisation():
    recipe = recipe_for("umt", image_size=32)
    frames = np.full((4, 48, 64, 3), 255, np.uint8)
    frames[:, :, :, 1] = 0
    clip = preprocess(frames, recipe)
    assert clip.shape == (3, 4, 32, 32) and clip.dtype == np.float32
    assert clip.flags.c_contiguous
    # A flat frame stays flat through resize and crop: each channel is (x/255 - mean) / std.
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225]
    for c in range(3):
        np.testing.assert_allclose(clip[c], expected[c], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "hw, size, expected",
    [
        ((48, 64), 224, (224, 298)),
        ((64, 48), 224, (298, 224)),
        ((240, 320), 224, (224, 298)),
        ((100, 100), 32, (32, 32)),
        ((1080, 1920), 224, (224, 398)),
    ],
)
def test_short_side_size_truncates_like_transformers(hw, size, expected):
    assert short_side_size(*hw, size) == expected


def test_crop_keeps_the_centre():
    recipe = recipe_for("videomae", image_size=48)
    frames = np.zeros((1, 48, 64, 3), np.uint8)
    frames[:, :, 8:56] = 255  # exactly the 48 centre columns of a 64-wide frame
    clip = preprocess(frames, recipe)
    np.testing.assert_allclose(clip[0], (1 - 0.485) / 0.229, atol=1e-6)


def _hf_processor(size):
    transformers = pytest.importorskip("transformers")
    # transformers 5 splits the processor into a PIL and a torchvision backend, and
    # VideoMAEImageProcessor means torchvision when it is installed; the PIL one is the
    # reference the released checkpoints were evaluated with (transformers 4's only one).
    cls = getattr(transformers, "VideoMAEImageProcessorPil", None)
    if cls is None:
        cls = transformers.VideoMAEImageProcessor
    # The checkpoints' preprocessor_config.json carry ImageNet mean/std; the class default is
    # (0.5, 0.5, 0.5), so pass them as the checkpoints do.
    return cls(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )


def _hf(frames, size):
    out = _hf_processor(size)(list(frames), return_tensors="np")["pixel_values"]
    assert out.shape == (1, len(frames), 3, size, size)
    return out[0].transpose(1, 0, 2, 3)  # (T, 3, S, S) -> (3, T, S, S)


@pytest.mark.parametrize(
    "t, height, width, size",
    [(4, 48, 64, 224), (3, 64, 48, 224), (2, 240, 320, 224), (4, 48, 64, 32), (2, 57, 91, 32)],
)
def test_matches_videomae_image_processor(t, height, width, size):
    frames = _frames(t, height, width, seed=height * width)
    ours = preprocess(frames, recipe_for("videomae", image_size=size))
    np.testing.assert_allclose(ours, _hf(frames, size), rtol=0, atol=1e-6)


def test_matches_videomae_image_processor_on_decoded_frames(tmp_path):
    video = write_video(tmp_path / "clip.mp4", 20)
    frames, _ = sample_frames(video, "uniform", 4)
    ours = preprocess(frames, recipe_for("videomae"))
    np.testing.assert_allclose(ours, _hf(frames, 224), rtol=0, atol=1e-6)
