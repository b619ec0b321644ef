"""Pareto plot of a tune: cost (FLOPs ratio or predicted latency) against drift, presets marked."""

from __future__ import annotations

from pathlib import Path

from vidtldr_deploy.evaluate.plot import plot_points


def plot_pareto(result: dict, path: str | Path) -> Path:
    """PNG of every evaluated candidate of a tune report (TuneResult.to_dict())."""
    latency = result["target"]["kind"] == "latency_ms"
    x_key = "latency_ms" if latency else "flops_ratio"
    points = [
        {
            **c,
            "preset": c["form"].removeprefix("preset:")
            if c["form"].startswith("preset:")
            else None,
            "chosen": c["schedule"] == result["schedule"],
        }
        for c in result["candidates"]
    ]
    if latency:
        budget = result["target"]["value"]
    elif result["target"]["kind"] == "speedup":
        budget = 1.0 / result["target"]["value"]
    else:
        budget = result["target"]["value"]
    title = (
        f"{result['arch']} {result['frames']} frames, {result['clips']['count']} clips: "
        f"{result['schedule']} ({result['candidates_evaluated']} candidates)"
    )
    x_label = "predicted latency (ms)" if latency else "FLOPs merged / unmerged"
    return plot_points(points, path, x_key=x_key, x_label=x_label, title=title, budget=budget)
