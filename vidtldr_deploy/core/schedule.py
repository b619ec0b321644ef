"""Schedule strings -> per-layer merge table (docs/design.md, "Schedules").

One helper turns every schedule form into a per-layer list of r, and one resolves that list against a
model's token count into the table that is printed, stored in ONNX metadata and in every report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from vidtldr_deploy.core.merge import resolve_r
from vidtldr_deploy.errors import InputError

GRAMMAR = (
    "'RxL' (r=R in each of the first L layers, e.g. 16x12 or 0.25x2), "
    "'a,b,c' (r per layer from layer 0, e.g. 600,200,100), 'none', "
    "or a preset name"
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# An r above this merges more tokens than any video transformer has: it is a typo, and refusing it
# keeps float/int conversions of 300-digit numbers (OverflowError, ValueError) out of the parser.
MAX_R = 10**9
_MAX_DIGITS = 12


def _show(spec: str) -> str:
    """A schedule as messages quote it: a 300-digit typo is shortened, not echoed whole."""
    return repr(spec) if len(spec) <= 40 else repr(spec[:30] + "...") + f" ({len(spec)} characters)"


def _number(text: str, spec: str) -> float:
    """One r: a fraction 0 < r < 1 of the tokens, or a whole token count r >= 1 (exact)."""
    text = text.strip()
    whole = text.split(".", 1)[0].lstrip("-")
    if len(whole.lstrip("0")) > _MAX_DIGITS:
        raise InputError(f"schedule {_show(spec)}: r {text[:20]}... is larger than any token count")
    value = float(text)
    if value < 0:
        raise InputError(f"schedule {_show(spec)}: r must be >= 0, got {text}")
    if value > MAX_R:
        raise InputError(f"schedule {_show(spec)}: r {text} is larger than any token count")
    if value < 1:
        return value
    if value != int(value):
        # Flooring 1.5 to 1 would export another model than the one asked for: refuse instead.
        raise InputError(
            f"schedule {_show(spec)}: r {text} is neither a fraction below 1 nor a whole token count: "
            f"use {int(value)} or {int(value) + 1} tokens, or a fraction such as 0.25"
        )
    return int(value)


def _too_deep(spec: str, layers: str | int, depth: int) -> InputError:
    return InputError(
        f"schedule {_show(spec)} has {layers} layers but the model has {depth}: "
        f"give at most {depth} entries"
    )


def _layer_count(text: str, spec: str, depth: int) -> int:
    """The L of 'RxL', checked against the depth before any list of that length is built."""
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(depth)) or int(digits) > depth:
        shown = digits if len(digits) <= 20 else f"{digits[:10]}... ({len(digits)} digits)"
        raise _too_deep(spec, shown, depth)
    return int(digits)


def parse_schedule(
    spec: str,
    depth: int,
    presets: Mapping[str, Sequence[int]] | None = None,
    owner: str | None = None,
) -> list[float]:
    """Per-layer r list of length `depth` from a schedule string; errors say what was expected.

    `presets` are the named schedules the caller's architecture (`owner`, for messages) publishes:
    core knows no model names (models/presets.py holds them). Every error is an InputError; the
    length is checked before a list is built, so '1x100000000' costs nothing."""
    if not isinstance(spec, str):
        raise InputError(f"schedule must be a string, got {type(spec).__name__} {spec!r}")
    text = spec.strip().lower()
    if text in ("", "none", "0"):
        return [0] * depth
    presets = presets or {}
    if text in presets:
        rs: list[float] = list(presets[text])
        if len(rs) > depth:
            raise _too_deep(spec, len(rs), depth)
    elif m := re.fullmatch(rf"({_NUMBER})x(\d+)", text):
        count = _layer_count(m.group(2), spec, depth)
        rs = [_number(m.group(1), spec)] * count
    elif re.fullmatch(rf"-?{_NUMBER}(\s*,\s*-?{_NUMBER})*", text):
        entries = text.count(",") + 1
        if entries > depth:
            raise _too_deep(spec, entries, depth)
        rs = [_number(t, spec) for t in text.split(",")]
    else:
        known = ", ".join(sorted(presets)) or f"none for architecture {owner!r}"
        raise InputError(
            f"cannot parse schedule {_show(spec)}: expected {GRAMMAR}. Presets: {known}."
        )
    return rs + [0] * (depth - len(rs))


@dataclass(frozen=True)
class LayerMerge:
    layer: int
    tokens_in: int
    r_requested: float
    r: int
    tokens_out: int
    clamped: bool


@dataclass(frozen=True)
class MergeSchedule:
    """The resolved schedule: one row per layer, with the static token counts the export bakes in."""

    spec: str
    layers: tuple[LayerMerge, ...]
    # What the user should know about this schedule (e.g. a preset used at another frame count);
    # the CLI prints them and reports record them.
    notes: tuple[str, ...] = ()

    @property
    def rs(self) -> list[int]:
        return [row.r for row in self.layers]

    @property
    def tokens_out(self) -> int:
        return self.layers[-1].tokens_out if self.layers else 0

    @property
    def merges(self) -> bool:
        return any(self.rs)

    def to_dict(self) -> dict:
        data = {"spec": self.spec, "layers": [asdict(row) for row in self.layers]}
        if self.notes:
            data["notes"] = list(self.notes)
        return data


def resolve_schedule(
    spec: str,
    depth: int,
    n_tokens: int,
    presets: Mapping[str, Sequence[int]] | None = None,
    protected: int = 0,
    owner: str | None = None,
) -> MergeSchedule:
    """Resolve a schedule string against a model's depth and token count (clamping r to N // 2)."""
    rows = []
    n = n_tokens
    for layer, requested in enumerate(parse_schedule(spec, depth, presets, owner)):
        r = resolve_r(requested, n, protected)
        wanted = int(n * requested) if 0 < requested < 1 else int(requested)
        rows.append(LayerMerge(layer, n, requested, r, n - r, clamped=r < wanted))
        n -= r
    return MergeSchedule(spec=spec, layers=tuple(rows))


def unmerged_schedule(depth: int, n_tokens: int) -> MergeSchedule:
    """The baseline: no merging anywhere."""
    return resolve_schedule("none", depth, n_tokens)
