"""Schedule strings -> per-layer merge table (docs/design.md, "Schedules").

One helper turns every schedule form into a per-layer list of r, and one resolves that list against a
model's token count into the table that is printed, stored in ONNX metadata and in every report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from vidtldr_deploy.core.merge import resolve_r
from vidtldr_deploy.errors import VidTLDRError

GRAMMAR = (
    "'RxL' (r=R in each of the first L layers, e.g. 16x12 or 0.25x2), "
    "'a,b,c' (r per layer from layer 0, e.g. 600,200,100), 'none', "
    "or a preset name"
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"


def _number(text: str, spec: str) -> float:
    value = float(text)
    if value < 0:
        raise VidTLDRError(f"schedule {spec!r}: r must be >= 0, got {text}")
    return int(value) if value >= 1 and value == int(value) else value


def parse_schedule(
    spec: str,
    depth: int,
    presets: Mapping[str, Sequence[int]] | None = None,
    owner: str | None = None,
) -> list[float]:
    """Per-layer r list of length `depth` from a schedule string; errors say what was expected.

    `presets` are the named schedules the caller's architecture (`owner`, for messages) publishes:
    core knows no model names (models/presets.py holds them)."""
    text = spec.strip().lower()
    if text in ("", "none", "0"):
        return [0] * depth
    presets = presets or {}
    if text in presets:
        rs: list[float] = list(presets[text])
    elif m := re.fullmatch(rf"({_NUMBER})x(\d+)", text):
        rs = [_number(m.group(1), spec)] * int(m.group(2))
    elif re.fullmatch(rf"-?{_NUMBER}(\s*,\s*-?{_NUMBER})*", text):
        rs = [_number(t.strip(), spec) for t in text.split(",")]
    else:
        known = ", ".join(sorted(presets)) or f"none for architecture {owner!r}"
        raise VidTLDRError(
            f"cannot parse schedule {spec!r}: expected {GRAMMAR}. Presets: {known}."
        )
    if len(rs) > depth:
        raise VidTLDRError(
            f"schedule {spec!r} has {len(rs)} layers but the model has {depth}: "
            f"give at most {depth} entries"
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
        return {"spec": self.spec, "layers": [asdict(row) for row in self.layers]}


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
