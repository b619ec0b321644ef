"""A cache of preprocessed clips on disk, so repeated runs do not decode the same videos again."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from vidtldr_deploy.clips.recipe import ClipRecipe
from vidtldr_deploy.files import atomic_output

# Bump when the decoding or preprocessing changes the pixels for the same recipe text.
CACHE_VERSION = 1
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(file_digest: str, recipe: ClipRecipe, frames: int) -> str:
    """The key of one clip: the file's content (not its name, so a renamed or copied video hits
    and an edited one misses), every pixel-changing recipe field, T and the cache version."""
    text = f"v{CACHE_VERSION}|{file_digest}|{recipe.key()}|T={frames}"
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"{key}.npz"


def load_cached(cache_dir: str | Path, key: str) -> np.ndarray | None:
    """The cached clip, or None when absent or unreadable (a damaged entry is just a miss: the
    clip is decoded again and the entry rewritten)."""
    path = cache_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as archive:
            return np.asarray(archive["clip"], dtype=np.float32)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def store_cached(cache_dir: str | Path, key: str, clip: np.ndarray) -> Path:
    """Write the clip atomically: a concurrent or interrupted run never sees half an entry."""
    path = cache_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        # Through a file object: np.savez given a path would append ".npz" to the temporary name.
        with open(tmp, "wb") as f:
            np.savez(f, clip=clip)
    return path
