"""Writing reports: JSON (the source of truth) and its Markdown rendering beside it, atomically."""

from __future__ import annotations

import json
from pathlib import Path

from vidtldr_deploy.files import atomic_output, markdown_path  # noqa: F401 - re-exported
from vidtldr_deploy.report.markdown import to_markdown


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def write_markdown(path: str | Path, data: dict) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".md") as tmp:
        tmp.write_text(to_markdown(data))
    return path


def write_report(path: str | Path, data: dict) -> tuple[Path, Path]:
    """The JSON at `path` and its Markdown beside it; returns both paths."""
    json_path = write_json(path, data)
    return json_path, write_markdown(markdown_path(path), data)
