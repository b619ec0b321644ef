"""Clip labels from a CSV of `path,label` rows, matched to clip names."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

from vidtldr_deploy.errors import InputError


def load_labels(path: str | Path) -> dict[str, int]:
    """`path,label` rows -> {path: label}. A first row whose label is not an integer is a header."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"labels file {path} does not exist")
    labels: dict[str, int] = {}
    with path.open(newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise InputError(f"{path}:{line_no}: expected `path,label`, got {row!r}")
            clip, label = row[0].strip(), row[1].strip()
            try:
                labels[clip] = int(label)
            except ValueError:
                if line_no == 1:
                    continue  # header
                raise InputError(
                    f"{path}:{line_no}: label {label!r} is not an integer class index"
                ) from None
    return labels


def match_labels(names: Sequence[str], labels: Mapping[str, int]) -> list[int | None]:
    """The label of each clip name: by exact path, else by file name, else by file stem (the decoder
    may name clips by any of them); None where the CSV has no row for the clip."""
    by_name = {PurePath(k).name: v for k, v in labels.items()}
    by_stem = {PurePath(k).stem: v for k, v in labels.items()}
    out: list[int | None] = []
    for name in names:
        p = PurePath(name)
        out.append(labels.get(name, by_name.get(p.name, by_stem.get(p.stem))))
    return out
