"""Console renderings of reports (rich tables), readable at 80 columns: long titles wrap above the
table, numbers and names never wrap or get cut (their columns are no_wrap and narrow tables are
laid out tall rather than wide), and only free text (presets, descriptions, verdicts) wraps."""

from __future__ import annotations

from rich.table import Table

from vidtldr_deploy.report.cells import (
    SCHEDULE_HEADERS,
    Grid,
    comparison_grid,
    latency_grid,
    layer_grid,
    parts_grid,
    schedule_rows,
    summary_text,
)

TEXT_COLUMNS = {"result", "presets", "description"}  # free text: the only columns that wrap


def grid_table(grid: Grid, title: str | None = None, left: int = 1) -> Table:
    """A table whose first `left` columns are left-aligned labels and the rest right-aligned
    numbers; every column but free text is no_wrap, so a number is shown whole or not at all."""
    headers, rows = grid
    table = Table(title=title)
    for i, h in enumerate(headers):
        text = h in TEXT_COLUMNS or h.endswith("description")
        table.add_column(h, justify="left" if i < left or text else "right", no_wrap=not text,
                         overflow="fold" if text else "ellipsis")  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table


def schedule_table(schedule: dict, title: str | None = None) -> Table:
    grid = (SCHEDULE_HEADERS, schedule_rows(schedule))
    return grid_table(grid, title or f"merge schedule {schedule['spec']!r}", left=0)


def comparison_table(rows: list[dict], title: str, verdict: bool = True) -> Table:
    return grid_table(comparison_grid(rows, verdict, rich=True), title, left=1)


def latency_table(report: dict) -> Table:
    title = (f"latency: {report['runtime']} on {report['device']}, {report['precision']}, "
             f"batch {report['batch']} (interleaved)")  # fmt: skip
    return grid_table(latency_grid(report), title)


def layer_table(report: dict) -> Table:
    return grid_table(layer_grid(report), "per layer (ms per batch)", left=0)


def parts_table(report: dict) -> Table:
    return grid_table(parts_grid(report), "where the time goes (separate instrumented pass)")


def summary_line(report: dict) -> str:
    return summary_text(report)
