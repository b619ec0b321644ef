"""Clip batches for validation and profiling: seeded random clips, or arrays from .npy/.npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidtldr_deploy.errors import VidTLDRError


def make_inputs(
    shape: tuple[int, ...], seed: int = 0, count: int = 2, path: str | Path | None = None
) -> list[np.ndarray]:
    """Seeded random clips of `shape`, or the clips in a .npy (one batch) / .npz (one per array)."""
    if path is None:
        gen = torch.Generator().manual_seed(seed)
        return [torch.randn(shape, generator=gen).numpy() for _ in range(count)]
    path = Path(path)
    if not path.exists():
        raise VidTLDRError(f"input file {path} does not exist")
    try:
        loaded = np.load(path)
        arrays = [loaded] if isinstance(loaded, np.ndarray) else [loaded[k] for k in loaded.files]
    except (ValueError, OSError) as err:
        raise VidTLDRError(f"{path} is not a readable .npy/.npz file: {err}") from err
    for arr in arrays:
        if tuple(arr.shape) != tuple(shape):
            raise VidTLDRError(
                f"{path}: clip batch of shape {tuple(arr.shape)}, but the model takes {tuple(shape)}"
            )
    return [a.astype(np.float32) for a in arrays]
