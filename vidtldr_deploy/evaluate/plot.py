"""Drift against FLOPs, one point per evaluated schedule (PNG, matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vidtldr_deploy.models.presets import PRESETS


def plot_points(
    points: Iterable[dict],
    path: str | Path,
    x_key: str = "flops_ratio",
    x_label: str = "FLOPs merged / unmerged",
    title: str = "",
    budget: float | None = None,
    label_all: bool = False,
) -> Path:
    """Scatter of {schedule, <x_key>, drift, preset?, chosen?} dicts: presets as squares with their
    names, the chosen schedule as a star, an optional vertical budget line; `label_all` writes
    every point's schedule beside it (for a few points, as evaluate has)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidtldr_deploy.files import atomic_output

    points = list(points)
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    plain = [p for p in points if not p.get("preset") and not p.get("chosen")]
    ax.scatter(
        [p[x_key] for p in plain],
        [p["drift"] for p in plain],
        s=14,
        color="tab:blue",
        label="schedules",
    )
    if label_all:
        for p in plain:
            ax.annotate(
                p["schedule"],
                (p[x_key], p["drift"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    presets = [p for p in points if p.get("preset")]
    if presets:
        ax.scatter(
            [p[x_key] for p in presets],
            [p["drift"] for p in presets],
            s=40,
            marker="s",
            color="tab:orange",
            label="presets",
        )
        for p in presets:
            ax.annotate(
                p["preset"],
                (p[x_key], p["drift"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for p in points:
        if p.get("chosen"):
            ax.scatter(
                [p[x_key]],
                [p["drift"]],
                s=120,
                marker="*",
                color="tab:red",
                label=f"chosen {p['schedule']}",
                zorder=3,
            )
    if budget is not None:
        ax.axvline(budget, color="tab:gray", linestyle="--", linewidth=1, label="budget")
    ax.set_xlabel(x_label)
    ax.set_ylabel("drift (1 - mean cosine)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def preset_name(arch: str, spec: str) -> str | None:
    """The preset a schedule string names, if it is one of the architecture's presets."""
    return spec if spec in PRESETS.get(arch, {}) else None


def plot_drift(result: dict, path: str | Path) -> Path:
    """Drift against FLOPs ratio for an evaluate report (EvaluateResult.to_dict())."""
    points = [
        {
            "schedule": s["schedule"],
            "flops_ratio": s["flops"]["ratio"],
            "drift": 1.0 - s["metrics"]["cosine_mean"],
            "preset": preset_name(result.get("arch", ""), s["schedule"]),
        }
        for s in result["schedules"]
    ]
    title = (
        f"{result.get('arch', '')} {result.get('frames', '')} frames, "
        f"{result['clips']['count']} clips ({result.get('output', '')})"
    )
    return plot_points(points, path, title=title, label_all=True)
