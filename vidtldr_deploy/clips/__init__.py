"""Real clips as model input: video files, folders of them and .npy/.npz arrays,
sampled and preprocessed the way each family was evaluated, cached and batched for a graph."""

from __future__ import annotations

from vidtldr_deploy.clips.batching import ClipBatch, make_batches
from vidtldr_deploy.clips.cache import cache_key, file_sha256
from vidtldr_deploy.clips.decode import count_frames, decode_frames, sample_frames
from vidtldr_deploy.clips.limits import DecodeLimits
from vidtldr_deploy.clips.loader import (
    ClipSet,
    ClipStream,
    SkippedClip,
    decode_clip,
    load_clips,
    load_video_clip,
)
from vidtldr_deploy.clips.preprocess import preprocess
from vidtldr_deploy.clips.recipe import FAMILY_RECIPES, ClipRecipe, frames_for, recipe_for
from vidtldr_deploy.clips.sampling import middle_indices, sample_indices, uniform_indices
from vidtldr_deploy.clips.sources import (
    ARRAY_SUFFIXES,
    VIDEO_SUFFIXES,
    ClipSource,
    expand_paths,
)

__all__ = [
    "ARRAY_SUFFIXES",
    "FAMILY_RECIPES",
    "VIDEO_SUFFIXES",
    "ClipBatch",
    "ClipRecipe",
    "ClipSet",
    "ClipStream",
    "ClipSource",
    "DecodeLimits",
    "SkippedClip",
    "cache_key",
    "count_frames",
    "decode_clip",
    "decode_frames",
    "expand_paths",
    "file_sha256",
    "frames_for",
    "load_clips",
    "load_video_clip",
    "make_batches",
    "middle_indices",
    "preprocess",
    "recipe_for",
    "sample_frames",
    "sample_indices",
    "uniform_indices",
]
