from __future__ import annotations

import pytest

from vidtldr_deploy.clips import (
    ClipRecipe,
    frames_for,
    middle_indices,
    recipe_for,
    sample_indices,
    uniform_indices,
)
from vidtldr_deploy.errors import VidTLDRError


# Hand-checked against get_frame_indices(t, n, sample="middle") of the UMT/vid-TLDR loaders:
# n=10, t=4: bounds linspace(0, 10, 5).astype(int) = 0 2 5 7 10, segments [0,1] [2,4] [5,6] [7,9].
@pytest.mark.parametrize(
    "n, t, expected",
    [
        (10, 4, [0, 3, 5, 8]),
        (30, 8, [1, 4, 8, 12, 16, 19, 23, 27]),
        (8, 8, list(range(8))),
        (9, 1, [4]),
        (100, 4, [12, 37, 62, 87]),
    ],
)
def test_middle_indices(n, t, expected):
    assert middle_indices(n, t) == expected


# np.linspace(0, n - 1, t) truncated: n=10, t=4 -> 0, 3, 6, 9; n=30, t=8 -> 0 4.14 8.29 ... 29.
@pytest.mark.parametrize(
    "n, t, expected",
    [
        (10, 4, [0, 3, 6, 9]),
        (30, 8, [0, 4, 8, 12, 16, 20, 24, 29]),
        (16, 16, list(range(16))),
        (20, 3, [0, 9, 19]),  # 9.5 truncates to 9, not rounds to 10
    ],
)
def test_uniform_indices(n, t, expected):
    assert uniform_indices(n, t) == expected


def test_sampling_by_name_and_refusals():
    assert sample_indices("middle", 10, 4) == middle_indices(10, 4)
    assert sample_indices("uniform", 10, 4) == uniform_indices(10, 4)
    with pytest.raises(VidTLDRError, match="unknown sampling"):
        sample_indices("random", 10, 4)
    with pytest.raises(VidTLDRError, match="fewer than the 8"):
        middle_indices(5, 8)
    with pytest.raises(VidTLDRError, match="positive"):
        uniform_indices(5, 0)


def test_recipes_by_family_and_architecture():
    umt, mae = recipe_for("umt"), recipe_for("VideoMAE")
    assert (umt.sampling, umt.image_size, mae.sampling, mae.image_size) == (
        "middle",
        224,
        "uniform",
        224,
    )
    assert umt.mean == (0.485, 0.456, 0.406) and umt.std == (0.229, 0.224, 0.225)
    assert recipe_for("umt-b16") == umt
    assert recipe_for("videomae-tiny") == mae.with_size(32)
    assert recipe_for("umt", image_size=160).image_size == 160
    assert frames_for("umt-b16") == 12 and frames_for("videomae-b") == 16
    assert frames_for("videomae-b", 8) == 8
    with pytest.raises(VidTLDRError, match="clip family"):
        recipe_for("resnet50")
    with pytest.raises(VidTLDRError):
        ClipRecipe("umt", "random", 224)
    # Recipes are frozen values: equal recipes, equal cache keys.
    assert umt.key() == recipe_for("umt-l16").key() != mae.key()
