"""Plots of reports (matplotlib, Agg), written atomically as PNG."""

from __future__ import annotations

from pathlib import Path


def plot_profile(report: dict, path: str | Path) -> Path:
    """PNG: latency distribution of both models (left) and tokens per layer (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from vidtldr_deploy.files import atomic_output

    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    int8 = "baseline_int8" in report  # INT8 unmerged too: the merging speedup is against it
    keys = ("baseline", "baseline_int8", "merged") if int8 else ("baseline", "merged")
    names = ("fp32 unmerged", "int8 unmerged", "int8 merged") if int8 else ("unmerged", "merged")
    colors = ("tab:gray", "tab:olive", "tab:blue") if int8 else ("tab:gray", "tab:blue")
    parts = ax1.violinplot([report[k].get("samples_ms", []) for k in keys], showmedians=True)
    for body, color in zip(parts["bodies"], colors):
        body.set_facecolor(color)
    ax1.set_xticks(list(range(1, len(keys) + 1)), list(names))
    ax1.set_ylabel("latency per batch (ms)")
    speedup = report["merging_speedup"] if int8 else report["speedup"]
    ax1.set_title(
        f"{report['runtime']} {report['device']} {report['precision']}, batch {report['batch']}: "
        f"{'merging ' if int8 else ''}{speedup:.2f}x (ideal {report['flops']['ideal_speedup']:.2f}x)",
        fontsize=9,
    )
    layers = report["schedule"]["layers"]
    xs = [row["layer"] for row in layers]
    ax2.step(
        xs,
        [row["tokens_in"] for row in layers],
        where="post",
        label="merged (tokens in)",
        color="tab:blue",
    )
    ax2.plot(
        xs,
        [layers[0]["tokens_in"]] * len(xs) if layers else [],
        "--",
        color="tab:gray",
        label="unmerged",
    )
    ax2.set_xlabel("layer")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("tokens")
    ax2.set_ylim(bottom=0)
    ax2.set_title(f"tokens per layer, schedule {report['schedule']['spec']!r}", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
