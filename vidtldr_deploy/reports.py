"""Reports: JSON is the source of truth; rich tables for the terminal and Markdown are renderings."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from vidtldr_deploy.files import atomic_output


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    return path


def write_markdown(path: str | Path, data: dict) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".md") as tmp:
        tmp.write_text(to_markdown(data))
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def schedule_rows(schedule: dict) -> list[list[str]]:
    return [
        [str(r["layer"]), str(r["tokens_in"]), _fmt(r["r_requested"]),
         f"{r['r']}{' (clamped)' if r['clamped'] else ''}", str(r["tokens_out"])]
        for r in schedule["layers"]
    ]  # fmt: skip


SCHEDULE_HEADERS = ["layer", "tokens in", "r asked", "r", "tokens out"]


def schedule_table(schedule: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"merge schedule {schedule['spec']!r}")
    for h in SCHEDULE_HEADERS:
        table.add_column(h, justify="right")
    for row in schedule_rows(schedule):
        table.add_row(*row)
    return table


METRIC_ORDER = ["max_abs", "mean_abs", "cosine", "rel_l2", "top1", "top5"]


def _metric_names(rows: list[dict]) -> list[str]:
    present = {k for r in rows for k in r["metrics"]}
    return [m for m in METRIC_ORDER if m in present]


def _verdict(row: dict, rich: bool) -> str:
    if row["passed"]:
        return "[green]pass[/]" if rich else "pass"
    why = "; ".join(row["failures"])
    if not row.get("gating", True):
        # Reported, not judged: row-aligned tokens after a merge-selection flip (see validate.py).
        return f"[yellow]info[/] {why} (not gating)" if rich else f"info: {why} (not gating)"
    return f"[red]FAIL[/] {why}" if rich else f"FAIL: {why}"


def _comparison_grid(rows: list[dict], verdict: bool, rich: bool) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a comparison, shared by the terminal table and the Markdown."""
    names = _metric_names(rows)
    headers = ["output", "shape", *names] + (["result"] if verdict else [])
    cells = []
    for r in rows:
        row = [r["name"], "x".join(map(str, r["shape"]))] + [_fmt(r["metrics"].get(m, "")) for m in names]
        cells.append(row + ([_verdict(r, rich=rich)] if verdict else []))
    return headers, cells


def comparison_table(rows: list[dict], title: str, verdict: bool = True) -> Table:
    table = Table(title=title)
    headers, cells = _comparison_grid(rows, verdict, rich=True)
    for h in headers:
        table.add_column(h, justify="left" if h in ("output", "result") else "right")
    for row in cells:
        table.add_row(*row)
    return table


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_comparison(rows: list[dict], verdict: bool) -> str:
    return _md_table(*_comparison_grid(rows, verdict, rich=False))


def _md_latency(report: dict) -> str:
    stats = ["mean", "median", "p90", "p99", "min", "max"]
    rows = []
    for key in ("baseline", "merged"):
        if key in report:
            lat = report[key]["latency_ms"]
            rows.append([key] + [_fmt(lat[s]) for s in stats] + [_fmt(report[key]["throughput"])])
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
                  _md_table(["model", "GFLOPs"], [["baseline", _fmt(f["baseline"] / 1e9)],
                                                  ["merged", _fmt(f["merged"] / 1e9)]])]  # fmt: skip
    if "schedule" in report:
        parts += [f"## Merge schedule `{report['schedule']['spec']}`\n",
                  _md_table(SCHEDULE_HEADERS, schedule_rows(report["schedule"]))]  # fmt: skip
    return "\n".join(parts) + "\n"
