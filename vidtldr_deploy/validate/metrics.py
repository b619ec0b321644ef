"""Output comparison (docs/design.md, "Validation"): per-output metrics against tolerances.

Like Polygraphy's comparators, the metric functions are values: `compare` takes a mapping of
metric name -> function, and per-output tolerances, so callers can swap or extend either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from vidtldr_deploy.validate.tolerances import Tolerances

Metric = Callable[[np.ndarray, np.ndarray], float]


def max_abs_error(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.max(np.abs(ref - out))) if ref.size else 0.0


def mean_abs_error(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.mean(np.abs(ref - out))) if ref.size else 0.0


def cosine_similarity(ref: np.ndarray, out: np.ndarray) -> float:
    """Cosine of the flattened outputs, the worst over the batch (1.0 for two zero vectors)."""
    worst = 1.0
    for r, o in zip(ref.reshape(len(ref), -1), out.reshape(len(out), -1)):
        denom = float(np.linalg.norm(r) * np.linalg.norm(o))
        cos = float(np.dot(r, o) / denom) if denom > 0 else float(np.array_equal(r, o))
        worst = min(worst, cos)
    return worst


def relative_l2(ref: np.ndarray, out: np.ndarray) -> float:
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(ref - out))
    return diff / denom if denom > 0 else diff


def topk_agreement(k: int) -> Metric:
    """Fraction of samples whose top-k class sets agree (for logits)."""

    def metric(ref: np.ndarray, out: np.ndarray) -> float:
        k_ = min(k, ref.shape[-1])
        a = np.sort(np.argsort(-ref, axis=-1)[..., :k_], axis=-1)
        b = np.sort(np.argsort(-out, axis=-1)[..., :k_], axis=-1)
        return float(np.mean(np.all(a == b, axis=-1)))

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
