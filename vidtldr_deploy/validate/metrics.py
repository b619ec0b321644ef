"""Output metrics (docs/design.md, "Validation"): one definition per name, shared by validate and
evaluate, and the per-output comparison against tolerances.

Every metric is defined per clip (row) here; a command reports either the per-clip values
(evaluate: each clip, their mean and minimum) or, as a verdict on an output, the worst clip
(validate: the lowest cosine, the highest rel_l2, the fraction of clips that hit top-k).
- cosine: cosine similarity of a clip's flattened output with the reference's (1.0 for two zero
  vectors and for identical rows).
- rel_l2: ||out - ref|| / ||ref|| of a clip (the absolute difference when ref is zero).
- top1 / top5: 1.0 where the reference's top-1 class is among the output's top 1 / top 5 classes
  (top-k accuracy with the reference's prediction as the label).
- max_abs / mean_abs: largest / mean absolute element difference over the whole output.

Like Polygraphy's comparators, the metric functions are values: `compare_output` takes a mapping
of metric name -> function, and per-output tolerances, so callers can swap or extend either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from vidtldr_deploy.validate.tolerances import Tolerances

Metric = Callable[[np.ndarray, np.ndarray], float]


def clip_rows(a: np.ndarray) -> np.ndarray:
    """(N, ...) as (N, -1) float64: one row per clip."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), -1)


def cosine_rows(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Cosine similarity of each clip's vectors; two zero vectors count as identical (1.0)."""
    r, o = clip_rows(ref), clip_rows(out)
    denom = np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1)
    dots = np.einsum("nd,nd->n", r, o)
    same = np.all(r == o, axis=1)
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    # Identical rows are exactly 1: rounding in the norms must not make `none` drift.
    return np.where(same, 1.0, np.clip(cos, -1.0, 1.0))


def relative_l2_rows(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """||out - ref|| / ||ref|| per clip (the absolute difference when ref is zero)."""
    r, o = clip_rows(ref), clip_rows(out)
    diff = np.linalg.norm(o - r, axis=1)
    norm = np.linalg.norm(r, axis=1)
    return np.divide(diff, norm, out=diff.copy(), where=norm > 0)


def topk_hits(ref_logits: np.ndarray, out_logits: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the reference's top-1 class is among the output's top-k classes, per clip.

    Ties in the output's scores count in the class's favour only if it is not strictly outranked
    by k or more classes.
    """
    ref, out = clip_rows(ref_logits), clip_rows(out_logits)
    target = ref.argmax(axis=1)
    score = out[np.arange(len(out)), target]
    rank = np.sum(out > score[:, None], axis=1)  # classes strictly above the target
    return (rank < k).astype(np.float64)


def max_abs_error(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.max(np.abs(ref - out))) if ref.size else 0.0


def mean_abs_error(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.mean(np.abs(ref - out))) if ref.size else 0.0


def cosine_similarity(ref: np.ndarray, out: np.ndarray) -> float:
    """The worst clip's cosine (1.0 for an empty batch)."""
    return float(cosine_rows(ref, out).min()) if len(ref) else 1.0


def relative_l2(ref: np.ndarray, out: np.ndarray) -> float:
    """The worst clip's relative L2 (0.0 for an empty batch)."""
    return float(relative_l2_rows(ref, out).max()) if len(ref) else 0.0


def topk_agreement(k: int) -> Metric:
    """Fraction of clips whose reference top-1 class is among the output's top k (for logits)."""

    def metric(ref: np.ndarray, out: np.ndarray) -> float:
        return float(topk_hits(ref, out, k).mean()) if len(ref) else 1.0

    metric.__name__ = f"top{k}_agreement"
    return metric


DEFAULT_METRICS: dict[str, Metric] = {
    "max_abs": max_abs_error,
    "mean_abs": mean_abs_error,
    "cosine": cosine_similarity,
    "rel_l2": relative_l2,
}
LOGIT_METRICS: dict[str, Metric] = {"top1": topk_agreement(1), "top5": topk_agreement(5)}

# Metrics where larger is better; for the others a tolerance is an upper bound.
HIGHER_IS_BETTER = {"cosine", "top1", "top5"}


@dataclass
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    metrics: dict[str, float]
    failures: list[str] = field(default_factory=list)
    gating: bool = True  # False: reported, but not part of the verdict

    @property
    def passed(self) -> bool:
        return not self.failures


def compare_output(
    name: str,
    ref: np.ndarray,
    out: np.ndarray,
    tolerances: Tolerances | None,
    metrics: Mapping[str, Metric] | None = None,
) -> OutputComparison:
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        return OutputComparison(
            name,
            tuple(out.shape),
            {},
            [f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}"],
        )
    chosen = dict(metrics or DEFAULT_METRICS)
    if metrics is None and name == "logits":
        chosen.update(LOGIT_METRICS)
    values = {key: fn(ref, out) for key, fn in chosen.items()}
    failures = []
    if not np.all(np.isfinite(out)):
        failures.append("output has NaN or inf")
    for key, value in values.items():
        bound = tolerances.bound(key) if tolerances else None
        if bound is None:
            continue
        ok = value >= bound if key in HIGHER_IS_BETTER else value <= bound
        if not ok:
            relation = ">=" if key in HIGHER_IS_BETTER else "<="
            failures.append(f"{key} {value:.3g} not {relation} {bound:g}")
    return OutputComparison(name, tuple(ref.shape), values, failures)


def compare_outputs(
    ref: Mapping[str, np.ndarray],
    out: Mapping[str, np.ndarray],
    tolerances: Tolerances | None,
    metrics: Mapping[str, Metric] | None = None,
) -> list[OutputComparison]:
    """Compare every reference output; a missing output is a failure, not a crash."""
    results = []
    for name, value in ref.items():
        if name not in out:
            results.append(OutputComparison(name, tuple(value.shape), {}, ["output missing"]))
        else:
            results.append(compare_output(name, value, out[name], tolerances, metrics))
    return results
