"""Which T of a video's n frames each family looks at (pure index arithmetic, no decoding)."""

from __future__ import annotations

import numpy as np

from vidtldr_deploy.errors import InputError


def middle_indices(n: int, t: int) -> list[int]:
    """UMT / vid-TLDR evaluation: split [0, n) into t equal segments and take the middle of each.

    This is `get_frame_indices(t, n, sample='middle')` of the official UMT and vid-TLDR loaders:
    segment bounds are `linspace(0, n, t + 1).astype(int)`, segment i is [b_i, b_{i+1} - 1], and
    its middle is the floor of the mean of those two ends."""
    _check(n, t)
    bounds = np.linspace(0, n, t + 1).astype(int)
    return [int((lo + hi - 1) // 2) for lo, hi in zip(bounds[:-1], bounds[1:])]


def uniform_indices(n: int, t: int) -> list[int]:
    """VideoMAE evaluation: t indices evenly spread from the first to the last frame.

    `np.linspace(0, n - 1, t).astype(int)`, i.e. truncated, not rounded: this is what the Hugging
    Face video-classification guide's evaluation transform does (pytorchvideo's
    UniformTemporalSubsample: `torch.linspace(0, n - 1, t).long()`), so a model fine-tuned with
    that guide sees the same frames here. The last index is always n - 1."""
    _check(n, t)
    return [int(i) for i in np.linspace(0, n - 1, t).astype(int)]


SAMPLERS = {"middle": middle_indices, "uniform": uniform_indices}


def sample_indices(sampling: str, n: int, t: int) -> list[int]:
    if sampling not in SAMPLERS:
        raise InputError(f"unknown sampling {sampling!r}: use one of {', '.join(SAMPLERS)}")
    return SAMPLERS[sampling](n, t)


def _check(n: int, t: int) -> None:
    # The official loaders pad a short video by repeating its last frame; here a clip shorter
    # than T is refused instead, so that no metric silently runs on duplicated frames.
    if t < 1:
        raise InputError(f"frames per clip must be positive, got {t}")
    if n < t:
        raise InputError(f"the video has {n} frames, fewer than the {t} the model takes")
