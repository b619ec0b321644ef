"""`vidtldr archs`: the architectures, their default frames, token counts and presets."""

from __future__ import annotations

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import guarded, out
from vidtldr_deploy.cli.results import write_report_files

HEADERS = ["name", "family", "frames", "tokens", "dim x depth", "presets", "description"]


def arch_rows() -> list[list[str]]:
    from vidtldr_deploy.core.flops import token_count
    from vidtldr_deploy.models.presets import presets_for
    from vidtldr_deploy.models.registry import list_architectures

    rows = []
    for a in list_architectures():
        c = a.config
        presets = ", ".join(presets_for(a.name)) or "-"
        tokens = token_count(c, a.default_frames)
        rows.append([a.name, a.family, str(a.default_frames), str(tokens), f"{c.embed_dim} x {c.depth}",
                     presets, a.description])  # fmt: skip
    return rows


def archs_command(report: opt.Report = None) -> None:
    """List the architectures, their default frames and token counts."""
    from vidtldr_deploy.files import check_output_path
    from vidtldr_deploy.report.tables import grid_table

    if report is not None:
        check_output_path(report, "--report")
    rows = arch_rows()
    # The descriptions go below the table: as a column they squeeze it into one word per line.
    out.print(grid_table((HEADERS[:-1], [r[:-1] for r in rows]), "architectures", left=2))
    for row in rows:
        out.print(f"{row[0]}: {row[-1]}", markup=False, highlight=False)
    write_report_files(report, {"kind": "archs", "headers": HEADERS, "rows": rows})


def register(app: typer.Typer) -> None:
    app.command("archs")(guarded(archs_command))
