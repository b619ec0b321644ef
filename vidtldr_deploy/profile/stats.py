"""Latency statistics of per-iteration wall times (docs/design.md, "Profiling")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STATS = ("mean", "median", "p90", "p99", "min", "max")


def latency_stats(seconds: Sequence[float], batch: int = 1) -> dict:
    """Latency statistics of per-iteration wall times in seconds.

    Returns {"latency_ms": {mean, median, p90, p99, min, max}, "throughput": clips/s (batch / mean
    seconds), "iterations": n}. Percentiles interpolate linearly between samples, so
    min <= median <= p90 <= p99 <= max always holds.
    """
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError("latency_stats needs at least one timing")
    if not np.all(np.isfinite(ms)) or np.any(ms < 0):
        raise ValueError("timings must be finite and non-negative")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    lat = {
        "mean": mean,
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }
    throughput = batch / (mean / 1e3) if mean > 0 else float("inf")
    return {"latency_ms": lat, "throughput": throughput, "iterations": int(ms.size)}


def speedup(baseline: dict, merged: dict) -> float:
    """Baseline median over merged median (> 1: merging is faster)."""
    return baseline["latency_ms"]["median"] / merged["latency_ms"]["median"]
