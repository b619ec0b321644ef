"""Cells shared by every rendering (console tables and Markdown): number formats, the schedule rows,
the comparison grid."""

from __future__ import annotations

def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def schedule_rows(schedule: dict) -> list[list[str]]:
    return [
        [str(r["layer"]), str(r["tokens_in"]), fmt(r["r_requested"]),
         f"{r['r']}{' (clamped)' if r['clamped'] else ''}", str(r["tokens_out"])]
        for r in schedule["layers"]
    ]  # fmt: skip


SCHEDULE_HEADERS = ["layer", "tokens in", "r asked", "r", "tokens out"]


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


def comparison_grid(rows: list[dict], verdict: bool, rich: bool) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a comparison, shared by the terminal table and the Markdown."""
    names = _metric_names(rows)
    headers = ["output", "shape", *names] + (["result"] if verdict else [])
    cells = []
    for r in rows:
        row = [r["name"], "x".join(map(str, r["shape"]))] + [fmt(r["metrics"].get(m, "")) for m in names]
        cells.append(row + ([_verdict(r, rich=rich)] if verdict else []))
    return headers, cells
