"""The schedules published with vid-TLDR, by architecture, and the one helper that resolves a
schedule string for a loaded model (its depth, token count and presets)."""

from __future__ import annotations

import dataclasses

from vidtldr_deploy.core.schedule import MergeSchedule, resolve_schedule

# Published with vid-TLDR (mlvlab/vid-TLDR README, 12 frames): r per layer from layer 0.
PRESETS: dict[str, dict[str, list[int]]] = {
    "umt-b16": {
        "msrvtt": [600, 200, 100],
        "msvd": [450, 250, 200],
        "anet": [500],
        "didemo": [250, 150, 150, 150],
        "lsmdc": [400, 150, 150],
        "ssv2-label": [200, 200, 200, 100],
        "ssv2-template": [400, 300],
        "qa-msrvtt": [600, 200],
        "qa-msvd": [600, 200],
    },
    "umt-l16": {
        "msrvtt": [550, 400],
        "msvd": [600, 200, 100, 100],
        "anet": [600, 300],
        "didemo": [800, 100],
        "lsmdc": [250, 250, 200, 200],
        "ssv2-label": [450, 250, 100],
        "ssv2-template": [350, 300, 100, 50],
        "qa-msrvtt": [400, 400, 100],
        "qa-msvd": [400, 400, 100],
    },
}
# The frame count the presets were published for: at another count the token table differs, so a
# preset's r values mean a different share of the tokens (the CLI says so).
PRESET_FRAMES = 12


def presets_for(arch: str | None) -> dict[str, list[int]]:
    return PRESETS.get(arch or "", {})


def preset_note(spec: str, arch: str | None, frames: int | None) -> str | None:
    """A warning when a preset is used at another frame count than it was published for."""
    name = spec.strip().lower() if isinstance(spec, str) else ""
    if frames is None or frames == PRESET_FRAMES or name not in presets_for(arch):
        return None
    return (
        f"preset {name!r} was published for {PRESET_FRAMES} frames; at {frames} frames the model "
        f"has another token count, so its r values merge a different share of the tokens"
    )


def schedule_for(
    spec: str, arch: str | None, depth: int, n_tokens: int, frames: int | None = None
) -> MergeSchedule:
    """Resolve `spec` for a model of `arch` with `depth` blocks and `n_tokens` input tokens; given
    `frames`, a preset used at another frame count carries a note saying so."""
    resolved = resolve_schedule(spec, depth, n_tokens, presets_for(arch), owner=arch)
    note = preset_note(spec, arch, frames)
    return dataclasses.replace(resolved, notes=(note,)) if note else resolved
