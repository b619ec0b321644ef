"""Markdown renderings of reports: what the console shows, for files and pull requests."""

from __future__ import annotations

from vidtldr_deploy.report.cells import SCHEDULE_HEADERS, comparison_grid, fmt, schedule_rows


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_comparison(rows: list[dict], verdict: bool) -> str:
    return _md_table(*comparison_grid(rows, verdict, rich=False))


def _md_latency(report: dict) -> str:
    stats = ["mean", "median", "p90", "p99", "min", "max"]
    rows = []
    for key in ("baseline", "merged"):
        if key in report:
            lat = report[key]["latency_ms"]
            rows.append([key] + [fmt(lat[s]) for s in stats] + [fmt(report[key]["throughput"])])
    return _md_table(["model", *[f"{s} ms" for s in stats], "clips/s"], rows)


def to_markdown(report: dict) -> str:
    """Render any report this toolkit writes (validation, profile, schedule) as Markdown."""
    kind = report.get("kind", "report")
    parts = [f"# vidtldr {kind} report\n"]
    for key in ("target", "runtime", "device", "arch", "source", "precision", "inputs"):
        if report.get(key):
            parts.append(f"- **{key}**: {report[key]}")
    if "passed" in report:
        parts.append(f"- **result**: {'PASS' if report['passed'] else 'FAIL'}")
    if "speedup" in report:
        parts.append(f"- **speedup** (merged vs unmerged, median): {report['speedup']:.3f}x")
    parts.append("")
    if "outputs" in report:
        parts += ["## Outputs against PyTorch (same schedule)\n", _md_comparison(report["outputs"], True)]
    if report.get("merge_cost"):
        parts += ["## Cost of merging (unmerged against merged PyTorch; not an error)\n",
                  _md_comparison(report["merge_cost"], False)]  # fmt: skip
    if "baseline" in report and "latency_ms" in report.get("baseline", {}):
        parts += ["## Latency\n", _md_latency(report)]
    if "flops" in report:
        f = report["flops"]
        parts += ["## FLOPs (multiply-adds, fvcore convention)\n",
                  _md_table(["model", "GFLOPs"], [["baseline", fmt(f["baseline"] / 1e9)],
                                                  ["merged", fmt(f["merged"] / 1e9)]])]  # fmt: skip
    if "schedule" in report:
        parts += [f"## Merge schedule `{report['schedule']['spec']}`\n",
                  _md_table(SCHEDULE_HEADERS, schedule_rows(report["schedule"]))]  # fmt: skip
    return "\n".join(parts) + "\n"
