"""`vidtldr archs`: the architectures, their default frames, token counts and presets."""

from __future__ import annotations

import typer

from vidtldr_deploy.cli.console import guarded, out


def archs_command() -> None:
    """List the architectures, their default frames and token counts."""
    from rich.table import Table

    from vidtldr_deploy.core.flops import token_count
    from vidtldr_deploy.models.presets import presets_for
    from vidtldr_deploy.models.registry import list_architectures

    table = Table(title="architectures")
    for h in ("name", "family", "frames", "tokens", "width x depth", "presets", "description"):
        table.add_column(h, overflow="fold")
    for a in list_architectures():
        c = a.config
        presets = ", ".join(presets_for(a.name)) or "-"
        tokens = token_count(c, a.default_frames)
        table.add_row(a.name, a.family, str(a.default_frames), str(tokens), f"{c.embed_dim} x {c.depth}", presets, a.description)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("archs")(guarded(archs_command))
