"""How commands show typed results on the terminal and write their report files."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from vidtldr_deploy.cli.console import console, info, out


def show_warnings(warnings: list[str]) -> None:
    """Warnings on stderr, where they are seen even when stdout is piped to a file."""
    for text in warnings:
        console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False)


def write_report_files(path: Path | None, data: dict) -> None:
    if path is None:
        return
    from vidtldr_deploy.report.io import write_report

    json_path, md_path = write_report(path, data)
    info(f"report: {json_path} (Markdown: {md_path})")


def show_merge_agreement(decisions: dict) -> None:
    """An INT8 graph's merge decisions against fp32's (the `merge_decisions` report entry)."""
    out.print(
        f"merge decisions agreeing with fp32: {decisions['agreement']:.1%} "
        f"(at least {decisions['min_agreement']:.0%} required)", highlight=False,
    )  # fmt: skip


def show_validation(result) -> None:
    from vidtldr_deploy.report.cells import comparison_notes, tolerance_text
    from vidtldr_deploy.report.tables import comparison_table

    data = result.to_dict()
    spec = data["schedule"].get("spec", "")
    title = f"{result.runtime} against PyTorch (same schedule, {spec!r})"
    out.print(comparison_table(data["outputs"], title))
    for note in comparison_notes(data["outputs"]):
        out.print(note, markup=False, highlight=False)
    if data["merge_cost"]:
        title = "cost of merging: unmerged against merged PyTorch (not an error)"
        out.print(comparison_table(data["merge_cost"], title, verdict=False))
    out.print(f"tolerances ({result.precision}): {tolerance_text(data['tolerances'])}", markup=False,
              highlight=False)  # fmt: skip
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    out.print(f"validation {verdict} ({result.inputs})")
