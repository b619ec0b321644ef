"""Sampled uint8 frames -> the normalised float32 (3, T, H, W) clip a model takes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vidtldr_deploy.clips.recipe import ClipRecipe


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side at `size`, the long side truncated to an int, exactly
    as transformers' get_resize_output_image_size(default_to_square=False) computes it."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Short-side bilinear resize of one uint8 (H, W, 3) frame.

    PIL's bilinear (antialiased when shrinking, rounded to uint8) is what VideoMAEImageProcessor
    (the PIL backend) uses; torch's interpolate, even with antialias=True, lands a grey level
    off on some pixels (~0.017 after normalisation), so the processor's output is only
    reproduced to 1e-6 (in fact bit for bit) through PIL itself."""
    height, width = short_side_size(frame.shape[0], frame.shape[1], size)
    image = Image.fromarray(frame).resize((width, height), resample=Image.BILINEAR)
    return np.asarray(image)


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    # Floor offsets, as transformers' center_crop: an odd margin leaves the extra pixel at the end.
    top = (frame.shape[0] - size) // 2
    left = (frame.shape[1] - size) // 2
    return frame[top : top + size, left : left + size]


def normalize(frames: np.ndarray, recipe: ClipRecipe) -> np.ndarray:
    """uint8 (..., 3) -> float32, scaled to [0, 1] and normalised per channel.

    The order and precision follow transformers (rescale in float64 then cast to float32, then
    (x - mean) / std in float32) so that results agree to the last bit, not just to 1e-6."""
    scaled = (frames.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.asarray(recipe.mean, dtype=np.float32)
    std = np.asarray(recipe.std, dtype=np.float32)
    return (scaled - mean) / std


def preprocess(frames: np.ndarray, recipe: ClipRecipe) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) -> float32 (3, T, S, S), S = recipe.image_size."""
    size = recipe.image_size
    cropped = np.stack([center_crop(resize_frame(f, size), size) for f in frames])
    return np.ascontiguousarray(normalize(cropped, recipe).transpose(3, 0, 1, 2))
