"""Per-part times of one model from a runtime's own instrumentation (hooks, session profiling, a
layer profiler): a typed value every runner returns the same way, read by profiling and reports."""

from __future__ import annotations

from dataclasses import dataclass, field

PARTS = ("attention", "saliency", "merge", "mlp", "other")


@dataclass
class Breakdown:
    source: str  # which instrumentation measured it
    parts: dict[str, float]  # part -> ms per batch; always holds "total"
    layers: list[dict] | None = None  # per block, where the runtime can see blocks
    ops: list[dict] = field(default_factory=list)  # {name, ms[, calls]}, most time first
    note: str = ""
    unit: str = "ms per batch"

    @property
    def merge_share(self) -> float:
        total = self.parts.get("total", 0.0)
        return (
            (self.parts.get("saliency", 0.0) + self.parts.get("merge", 0.0)) / total
            if total > 0
            else 0.0
        )

    def to_dict(self) -> dict:
        out: dict = {"source": self.source, "unit": self.unit, "parts": self.parts,
                     "merge_share": self.merge_share}  # fmt: skip
        if self.layers is not None:
            out["layers"] = self.layers
        if self.note:
            out["note"] = self.note
        out["ops"] = self.ops
        return out


def summarise_layers(
    per_layer: list[dict], total: float, patch_embed: float, source: str
) -> Breakdown:
    """A breakdown from per-block rows (each with ms and the PARTS): totals per part, and the
    patch embedding and head (what the blocks do not cover) as parts of their own."""
    parts = {p: sum(row.get(p, 0.0) for row in per_layer) for p in PARTS}
    parts["patch_embed"] = patch_embed
    parts["head"] = max(0.0, total - patch_embed - sum(row["ms"] for row in per_layer))
    parts["total"] = total
    return Breakdown(source=source, parts=parts, layers=per_layer)


def from_named_times(times: dict[str, float], source: str) -> Breakdown:
    """A breakdown from per-layer or per-node times whose names say which part they belong to."""
    total = sum(times.values())
    sal = sum(v for k, v in times.items() if "saliency" in k.lower())
    mer = sum(v for k, v in times.items() if "merge" in k.lower())
    parts = {"saliency": sal, "merge": mer, "other": total - sal - mer, "total": total}
    ops = [{"name": k, "ms": v} for k, v in sorted(times.items(), key=lambda kv: -kv[1])]
    return Breakdown(source=source, parts=parts, ops=ops)
