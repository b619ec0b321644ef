"""Writing reports: JSON (the source of truth) and its Markdown rendering beside it, atomically
and as a pair: both appear, or neither does.

The JSON is strict (RFC 8259): NaN and Infinity are not JSON and break other tools' parsers, so a
non-finite number is written as null and its place is listed under `non_finite`."""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

from vidtldr_deploy.files import atomic_output, markdown_path  # noqa: F401 - re-exported
from vidtldr_deploy.report.markdown import to_markdown

NON_FINITE_NOTE = "values that were not finite numbers, written as null"


def finite_only(value, where: str = "", found: list[str] | None = None):
    """`value` with every non-finite number replaced by None; the places (a.b[2]) go to `found`."""
    found = [] if found is None else found
    if isinstance(value, dict):
        return {
            k: finite_only(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [finite_only(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            found.append(where)
            return None
        return number
    return value


def json_text(data: dict) -> str:
    found: list[str] = []
    clean = finite_only(data, found=found)
    if found:
        clean["non_finite"] = {"note": NON_FINITE_NOTE, "fields": found}
    return json.dumps(clean, indent=2, allow_nan=False, default=float) + "\n"


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    text = json_text(data)
    with atomic_output(path, suffix=".json") as tmp:
        tmp.write_text(text)
    return path


def write_markdown(path: str | Path, data: dict) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".md") as tmp:
        tmp.write_text(to_markdown(data))
    return path


def write_report(path: str | Path, data: dict) -> tuple[Path, Path]:
    """The JSON at `path` and its Markdown beside it, both or neither; returns both paths. Both
    are written to temporary files first, so a full disk fails before either is moved in."""
    json_path, md_path = Path(path), markdown_path(path)
    texts = json_text(data), to_markdown(data)
    md_placed = False
    try:
        with atomic_output(json_path, suffix=".json") as json_tmp:
            with atomic_output(md_path, suffix=".md") as md_tmp:
                json_tmp.write_text(texts[0])
                md_tmp.write_text(texts[1])
            md_placed = True
    except BaseException:
        if md_placed and md_path.exists():
            md_path.unlink()  # the JSON could not follow it: no half of a pair
        raise
    return json_path, md_path
