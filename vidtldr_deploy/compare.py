"""Output comparison (DESIGN.md, "Validation"): per-output metrics against tolerances.

Like Polygraphy's comparators, the metric functions are values: `compare` takes a mapping of
metric name -> function, and per-output tolerances, so callers can swap or extend either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

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


@dataclass(frozen=True)
class Tolerances:
    """Bounds a comparison must meet: upper bounds on errors, lower bounds on similarities.

    The fp32 defaults are not float32 rounding: merging is a discrete choice, and once the token
    count is large (UMT-B at 12 frames: 1176 candidates, neighbouring best scores ~1e-6 apart) two
    correct runtimes whose arithmetic differs in the last bits merge a different token now and
    then. Measured on UMT-B, 12 frames, 600,200,100, ONNX Runtime against PyTorch: pooled rel_l2
    4.7e-3, max_abs 2.3e-2, cosine > 0.99995; the whole cost of merging is rel_l2 ~6e-2.
    """

    max_abs: float = 5e-2
    mean_abs: float = 5e-3
    cosine: float = 0.9995
    rel_l2: float = 1e-2
    top1: float = 0.9
    top5: float = 0.8

    def bound(self, metric: str) -> float | None:
        return getattr(self, metric, None)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TOLERANCES: dict[str, Tolerances] = {
    "fp32": Tolerances(),
    "fp16": Tolerances(max_abs=1e-1, mean_abs=1e-2, cosine=0.999, rel_l2=3e-2),
}


def default_tolerances(precision: str) -> Tolerances:
    return DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])


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
            name, tuple(out.shape), {}, [f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}"]
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
