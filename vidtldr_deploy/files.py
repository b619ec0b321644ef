"""Atomic output files: whatever the toolkit writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from vidtldr_deploy.errors import VidTLDRError


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds, so a
    failure never leaves a half-written file behind."""
    path = Path(path)
    if not path.parent.is_dir():
        raise VidTLDRError(
            f"output directory {path.parent} does not exist: create it or choose another -o path"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
