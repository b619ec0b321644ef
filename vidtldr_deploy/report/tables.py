"""Console renderings of reports (rich tables), readable at 80 columns: long titles wrap above the
table and numbers are never cut."""

from __future__ import annotations

from rich.table import Table

from vidtldr_deploy.profile.stats import STATS
from vidtldr_deploy.report.cells import SCHEDULE_HEADERS, comparison_grid, schedule_rows
from vidtldr_deploy.runtime.breakdown import PARTS


def schedule_table(schedule: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"merge schedule {schedule['spec']!r}")
    for h in SCHEDULE_HEADERS:
        table.add_column(h, justify="right")
    for row in schedule_rows(schedule):
        table.add_row(*row)
    return table


def comparison_table(rows: list[dict], title: str, verdict: bool = True) -> Table:
    table = Table(title=title)
    headers, cells = comparison_grid(rows, verdict, rich=True)
    for h in headers:
        table.add_column(h, justify="left" if h in ("output", "result") else "right")
    for row in cells:
        table.add_row(*row)
    return table


def latency_table(report: dict):
    table = Table(title=f"latency: {report['runtime']} on {report['device']}, {report['precision']}, batch {report['batch']} (interleaved)")
    for h in ["model", *[f"{s} ms" for s in STATS], "clips/s", "peak MiB"]:
        table.add_column(h, justify="left" if h == "model" else "right")
    for key, label in (("baseline", "unmerged"), ("merged", "merged")):
        r = report[key]
        mem = r.get("peak_memory_mb")
        if mem is None and r.get("rss_delta_mb") is not None:
            mem_text = f"RSS +{r['rss_delta_mb']:.0f}"
        else:
            mem_text = "-" if mem is None else f"{mem:.0f}"
        table.add_row(label, *[f"{r['latency_ms'][s]:.3f}" for s in STATS], f"{r['throughput']:.2f}", mem_text)
    return table


def layer_table(report: dict):
    """Per-layer token table with the measured block times of both models."""
    table = Table(title="per layer (ms per batch)")
    heads = ["layer", "tokens in", "r", "tokens out", "merged ms", "of which saliency+merge", "unmerged ms"]
    for h in heads:
        table.add_column(h, justify="right")
    m = (report["merged"].get("breakdown") or {}).get("layers")
    b = (report["baseline"].get("breakdown") or {}).get("layers")
    for i, row in enumerate(report["schedule"]["layers"]):
        cells = [str(row["layer"]), str(row["tokens_in"]), str(row["r"]), str(row["tokens_out"])]
        if m and b:
            cells += [f"{m[i]['ms']:.3f}", f"{m[i]['saliency'] + m[i]['merge']:.3f}", f"{b[i]['ms']:.3f}"]
        else:
            cells += ["-", "-", "-"]
        table.add_row(*cells)
    return table


def parts_table(report: dict):
    table = Table(title="where the time goes (ms per batch, separate instrumented pass)")
    table.add_column("part")
    table.add_column("merged", justify="right")
    table.add_column("unmerged", justify="right")
    m = (report["merged"].get("breakdown") or {}).get("parts", {})
    b = (report["baseline"].get("breakdown") or {}).get("parts", {})
    for key in [k for k in ("patch_embed", *PARTS, "head", "total") if k in m or k in b]:
        table.add_row(key, f"{m.get(key, 0.0):.3f}", f"{b.get(key, 0.0):.3f}")
    return table


def summary_line(report: dict) -> str:
    f = report["flops"]
    return (
        f"speedup {report['speedup']:.2f}x (baseline median / merged median); ideal from FLOPs "
        f"{f['ideal_speedup']:.2f}x ({f['merged'] / 1e9:.2f} of {f['baseline'] / 1e9:.2f} GFLOPs); "
        f"{report['speedup_vs_ideal']:.0%} of ideal"
    )
