"""Clip labels from a CSV of `path,label` rows, matched to clip names.

Strict, because a wrong match silently changes an accuracy: the file must be UTF-8 (a BOM is
stripped), one clip has one label (repeated rows must agree), and a row names a clip by its path,
by its path relative to the --clips folder, or by its file name or stem only where that name is
unambiguous among both the rows and the clips."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

from vidtldr_deploy.errors import InputError


def load_labels(path: str | Path) -> dict[str, int]:
    """`path,label` rows -> {path: label}. A first row whose label is not an integer is a header."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"labels file {path} does not exist")
    labels: dict[str, int] = {}
    first_line: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise InputError(
            f"labels file {path} is not UTF-8 (byte {err.object[err.start]:#04x} at offset "
            f"{err.start}): save it as UTF-8"
        ) from None
    except (OSError, csv.Error) as err:
        raise InputError(f"labels file {path} cannot be read as CSV: {err}") from None
    for line_no, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise InputError(f"{path}:{line_no}: expected `path,label`, got {row!r}")
        clip, text = row[0].strip(), row[1].strip()
        try:
            label = int(text)
        except ValueError:
            if line_no == 1:
                continue  # header
            raise InputError(
                f"{path}:{line_no}: label {text!r} is not an integer class index"
            ) from None
        if label < 0:
            raise InputError(
                f"{path}:{line_no}: label {label} is negative: class indices start at 0"
            )
        if clip in labels and labels[clip] != label:
            raise InputError(
                f"{path}:{line_no}: {clip} is labelled {label}, but line {first_line[clip]} "
                f"labels it {labels[clip]}: keep one row per clip"
            )
        labels[clip] = label
        first_line.setdefault(clip, line_no)
    return labels


def _unique(keys) -> dict[str, str]:
    """name -> the one key with that name; names shared by several keys are left out."""
    counts = Counter(name for name, _ in keys)
    return {name: key for name, key in keys if counts[name] == 1}


def match_labels(
    names: Sequence[str], labels: Mapping[str, int], roots: Sequence[str | Path] = ()
) -> list[int | None]:
    """The label of each clip name: by exact path, by the path relative to one of `roots` (the
    --clips folders), else by file name, else by file stem, each only where the name is unique
    among the rows and among the clips; None where no row is the clip's."""
    rows = {PurePath(k).as_posix(): k for k in labels}
    row_names = _unique([(PurePath(k).name, k) for k in labels])
    row_stems = _unique([(PurePath(k).stem, k) for k in labels])
    clip_names = Counter(PurePath(n).name for n in names)
    clip_stems = Counter(PurePath(n).stem for n in names)
    out: list[int | None] = []
    for name in names:
        p = PurePath(name)
        key = rows.get(p.as_posix())
        for root in roots:
            if key is None and p.is_relative_to(root):
                key = rows.get(p.relative_to(root).as_posix())
        if key is None and clip_names[p.name] == 1:
            key = row_names.get(p.name)
        if key is None and clip_stems[p.stem] == 1:
            key = row_stems.get(p.stem)
        out.append(None if key is None else labels[key])
    return out


def check_classifier(num_classes: int, source: str = "--labels") -> None:
    """Labels need class logits: refused for an encoder (before any clip is decoded)."""
    if num_classes < 1:
        raise InputError(
            f"{source}: this model is an encoder (no class logits), so labels give no accuracy: "
            "drop --labels, or evaluate a classifier"
        )


def labels_for_clips(
    names: Sequence[str],
    labels: Mapping[str, int],
    num_classes: int,
    roots: Sequence[str | Path] = (),
    source: str = "--labels",
) -> tuple[dict[str, int], list[str]]:
    """{clip name: label} for the clips a row matches, and warnings with counts; refused: labels
    for a model without classes, a label outside them, and rows matching no clip at all."""
    check_classifier(num_classes, source)
    matched = match_labels(names, labels, roots)
    found = {n: lab for n, lab in zip(names, matched) if lab is not None}
    if not found:
        shown = ", ".join(list(labels)[:2])
        raise InputError(
            f"{source}: none of its {len(labels)} rows ({shown}, ...) matches any of the "
            f"{len(names)} clips ({names[0]}, ...): name clips by path, by path relative to the "
            "--clips folder, or by a file name used once"
        )
    outside = sorted({lab for lab in found.values() if lab >= num_classes})
    if outside:
        raise InputError(
            f"{source}: label(s) {', '.join(map(str, outside[:5]))} are outside the model's "
            f"{num_classes} classes (0..{num_classes - 1})"
        )
    warnings = []
    if len(found) < len(names):
        warnings.append(
            f"{source}: labels for {len(found)} of {len(names)} clips; accuracy counts those only"
        )
    return found, warnings
