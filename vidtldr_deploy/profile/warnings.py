"""What a reader of a profile must know before trusting its speedup (trtexec-style warnings):
unstable timings, and a model or schedule too small for merging to gain. Each warning says which
model and what to do; they go to the console and to the report's `warnings` list."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Coefficient of variation (std / mean) above which timings are called unstable. trtexec warns
# at 1% of GPU compute time; whole-model wall times on a CPU or a shared machine are noisier, so
# 10% flags runs whose medians can move by several percent between repeats.
CV_THRESHOLD = 0.10
# Below this ideal speedup from FLOPs, merging removes too little work to show reliably.
MIN_IDEAL_SPEEDUP = 1.1
# Below this many tokens a merge step's fixed costs (launches, gathers) outweigh the FLOPs it
# saves, so a merged model that is not faster says nothing about real-size models.
SMALL_MODEL_TOKENS = 512


def coefficient_of_variation(samples_ms: Sequence[float]) -> float:
    ms = np.asarray(samples_ms, dtype=np.float64)
    if ms.size < 2 or ms.mean() <= 0:
        return 0.0
    return float(ms.std(ddof=1) / ms.mean())


def timing_warnings(
    samples: dict[str, Sequence[float]], threshold: float = CV_THRESHOLD
) -> list[str]:
    """One warning per model ("merged", "baseline") whose timings vary by more than `threshold`."""
    names = {"merged": "merged", "baseline": "unmerged baseline"}
    out = []
    for label, ms in samples.items():
        cv = coefficient_of_variation(ms)
        if cv > threshold:
            out.append(
                f"unstable timings of the {names.get(label, label)} model: coefficient of "
                f"variation {cv:.0%} over {len(ms)} iterations (above {threshold:.0%}); the speedup "
                "may not repeat: use more --iterations (or --duration) and --warmup, or a quieter "
                "machine (no other jobs, fixed clocks, --threads)"
            )
    return out


def gain_warnings(ideal_speedup: float, speedup: float, tokens: int) -> list[str]:
    """Warnings when the model or schedule is too small for merging to show a gain."""
    out = []
    if ideal_speedup < MIN_IDEAL_SPEEDUP:
        out.append(
            f"the schedule removes little work: ideal speedup from FLOPs {ideal_speedup:.2f}x "
            f"(below {MIN_IDEAL_SPEEDUP:.1f}x), within what merge overheads and noise can eat; "
            "merge more tokens (a larger r or more layers) to measure a gain"
        )
    if speedup <= 1.0 and tokens < SMALL_MODEL_TOKENS:
        out.append(
            f"the model is too small to gain: {tokens} tokens (below {SMALL_MODEL_TOKENS}) and the "
            f"merged median is not below the baseline's ({speedup:.2f}x); at this size a merge "
            "step's fixed costs outweigh the FLOPs it saves: profile a real-size model"
        )
    return out
