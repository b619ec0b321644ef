"""How commands show typed results on the terminal and write their report files."""

from __future__ import annotations

from pathlib import Path

from vidtldr_deploy.cli.console import info, out


def write_report_files(path: Path | None, data: dict) -> None:
    if path is None:
        return
    from vidtldr_deploy.report.io import write_report

    json_path, md_path = write_report(path, data)
    info(f"report: {json_path} (Markdown: {md_path})")


def show_validation(result) -> None:
    from vidtldr_deploy.report.tables import comparison_table

    data = result.to_dict()
    out.print(comparison_table(data["outputs"], f"{result.runtime} against PyTorch (same schedule)"))
    if data["merge_cost"]:
        title = "cost of merging: unmerged against merged PyTorch (not an error)"
        out.print(comparison_table(data["merge_cost"], title, verdict=False))
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    out.print(f"validation {verdict} ({result.inputs})")
