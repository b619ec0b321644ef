"""The Triton preprocessing model's imports: vidtldr_deploy.clips and its recipe work without torch
(the Triton image's Python has none; see serve/triton_preprocess.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from vidtldr_deploy.clips import ClipRecipe, decode_clip
from vidtldr_deploy.clips.recipe import recipe_for

CHECKOUT = Path(__file__).resolve().parents[2]


def test_importing_clips_and_decoding_with_a_recipe_pulls_in_no_torch(tmp_path):
    from support.videos import write_video

    video = write_video(tmp_path / "c.mp4", 12)
    code = f"""
import sys
from vidtldr_deploy.clips import ClipRecipe, decode_clip
recipe = ClipRecipe.from_json({recipe_for("umt-tiny").to_json()!r})
clip = decode_clip(open({str(video)!r}, "rb").read(), recipe, 4)
assert clip.shape == (3, 4, 32, 32), clip.shape
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
print("torch modules:", heavy)
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(CHECKOUT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "torch modules: []"


def test_recipe_round_trips_through_json():
    recipe = recipe_for("videomae-tiny")
    back = ClipRecipe.from_json(recipe.to_json())
    assert back == recipe and back.key() == recipe.key()
    assert isinstance(back.mean, tuple)


def test_a_recipe_from_json_decodes_as_the_registry_recipe(tmp_path):
    from support.videos import write_video

    video = write_video(tmp_path / "c.mp4", 16)
    recipe = recipe_for("umt-tiny")
    np.testing.assert_array_equal(
        decode_clip(video.read_bytes(), ClipRecipe.from_json(recipe.to_json()), 4),
        decode_clip(video.read_bytes(), recipe, 4),
    )
