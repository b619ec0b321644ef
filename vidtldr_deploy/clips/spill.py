"""Preprocessed clips kept on disk between passes, for a command that reads its clips many times
(tune runs every candidate schedule on every clip): memory holds one chunk at a time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class SpilledClips:
    """A sequence of float32 clip chunks (N, 3, T, H, W), written once to a temporary folder and
    read back whole, one at a time, on each access (a fresh array, not a memory map: a map's pages
    would stay resident and grow with the clips read). Float32 as given, so every pass sees the
    same values. A context manager: the folder is removed on exit (or close())."""

    def __init__(self, prefix: str = "vidtldr-clips-"):
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self._sizes: list[int] = []

    def _path(self, index: int) -> Path:
        return Path(self._dir.name) / f"chunk_{index:06d}.npy"

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, dtype=np.float32)
        if len(chunk):
            np.save(self._path(len(self._sizes)), chunk)
            self._sizes.append(len(chunk))

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self._sizes):
            raise IndexError(index)
        return np.load(self._path(index))

    @property
    def count(self) -> int:
        """The clips in all chunks."""
        return sum(self._sizes)

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> SpilledClips:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
