"""The tuned schedule as an export config TOML that export/config.py `load_export_config` reads."""

from __future__ import annotations

import json
from pathlib import Path

from vidtldr_deploy.files import atomic_output


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same quotes and escapes) for the text we write.
    return json.dumps(value, ensure_ascii=True)


def export_config_text(
    arch: str,
    frames: int,
    schedule: str,
    description: str,
    comment: str = "",
    method: str = "vidtldr",
) -> str:
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [
        f"description = {_toml_string(description)}",
        f"arch = {_toml_string(arch)}",
        f"frames = {int(frames)}",
        f"schedule = {_toml_string(schedule)}",
    ]
    if method != "vidtldr":  # the default is left out, so older readers take the file
        lines.append(f"method = {_toml_string(method)}")
    return "\n".join(lines) + "\n"


def write_export_config(
    path: str | Path,
    arch: str,
    frames: int,
    schedule: str,
    description: str,
    comment: str = "",
    method: str = "vidtldr",
) -> Path:
    """Write `arch`, `frames`, `schedule`, `description` and a method other than vid-TLDR (every
    other export option keeps its default or comes from the command line)."""
    path = Path(path)
    with atomic_output(path, suffix=".toml") as tmp:
        tmp.write_text(export_config_text(arch, frames, schedule, description, comment, method))
    return path


def tune_description(result: dict) -> str:
    """One line for a tune report (TuneResult.to_dict()): the budget, the cost, the drift."""
    target = result["target"]
    return (
        f"{result['arch']} {result['frames']} frames, tuned for {target['kind']} "
        f"{target['value']:g}: FLOPs x{result['flops']['ratio']:.3f}, drift "
        f"{result['drift']:.3g} on {result['clips']['count']} clips"
    )


def write_tuned_config(path: str | Path, result: dict, arch: str | None = None) -> Path:
    """The export config of a tune report, with the search's provenance as a comment. `arch`: the
    registry name that rebuilds the model, where the report names it otherwise (a Hugging Face
    folder of its own size is reported by its sizes)."""
    comment = (
        f"vidtldr tune: {result['candidates_evaluated']} candidates, schedule {result['schedule']}"
        + (" (interrupted: best so far)" if result.get("interrupted") else "")
    )
    return write_export_config(
        path,
        arch or result["arch"],
        result["frames"],
        result["schedule"],
        tune_description(result),
        comment,
        result.get("method", "vidtldr"),
    )
