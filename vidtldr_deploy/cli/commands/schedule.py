"""`vidtldr schedule`: a schedule resolved into the per-layer token table and FLOPs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import guarded, out
from vidtldr_deploy.cli.results import write_report_files


def schedule_command(
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            help="Architecture name, or a model: a checkpoint, a Hugging Face folder, 'demo' or an exported .onnx (its own sizes and FLOPs).",
        ),
    ],
    schedule: opt.Schedule = None,
    frames: opt.Frames = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    report: opt.Report = None,
) -> None:
    """Resolve a schedule into the per-layer token table and FLOPs, merged against unmerged."""
    from vidtldr_deploy.core.flops import count_flops, token_count
    from vidtldr_deploy.files import check_outputs
    from vidtldr_deploy.models.presets import schedule_for
    from vidtldr_deploy.models.registry import get_architecture
    from vidtldr_deploy.models.vit import check_input_geometry
    from vidtldr_deploy.report.tables import schedule_table
    from vidtldr_deploy.target import TargetKind, resolve_target

    check_outputs({"--report": report})
    target = resolve_target(arch, architectures=True)
    if target.kind is TargetKind.ARCHITECTURE:
        spec = get_architecture(arch)
        cfg, name, family = spec.config, spec.name, spec.name
        frames = spec.default_frames if frames is None else frames
    else:  # a model: its own sizes (a custom-size folder is not its family's registered size)
        target.refuse_model_flags(frames=frames, schedule=schedule)
        loaded = target.load(frames=frames)
        cfg, name, family, frames = loaded.model.cfg, loaded.name, loaded.arch, loaded.frames
        if target.graph is not None:
            schedule = target.graph.spec
    check_input_geometry(cfg, frames)
    resolved = schedule_for(schedule or "none", family, cfg.depth, token_count(cfg, frames), frames)
    flops = count_flops(cfg, frames, resolved)
    data = {
        "kind": "schedule",
        "arch": name,
        "frames": frames,
        "spec": resolved.spec,
        "layers": resolved.to_dict()["layers"],
        "flops": {
            "merged": flops.merged,
            "baseline": flops.baseline,
            "ratio": flops.ratio,
            "ideal_speedup": flops.speedup,
        },
    }
    if resolved.notes:  # added only when present: --json output is otherwise as before
        data["notes"] = list(resolved.notes)
    # The report file also carries the table as every other report does (`schedule`); --json
    # prints exactly `data`, as before.
    write_report_files(report, {**data, "schedule": resolved.to_dict()})
    if as_json:
        print(json.dumps(data))
        return
    out.print(
        schedule_table(resolved.to_dict(), f"{name}, {frames} frames, schedule {resolved.spec!r}")
    )
    for note in resolved.notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    out.print(
        f"FLOPs (multiply-adds, fvcore convention): merged {flops.merged / 1e9:.2f} G, "
        f"unmerged {flops.baseline / 1e9:.2f} G, ideal speedup {flops.speedup:.2f}x"
    )


def register(app: typer.Typer) -> None:
    app.command("schedule")(guarded(schedule_command))
