"""One module per command; each exposes `register(app)`. The order here is the order of --help."""

from __future__ import annotations

from vidtldr_deploy.cli.commands import (
    archs,
    build_plugins,
    demo_clips,
    evaluate,
    export,
    profile,
    schedule,
    triton,
    tune,
    validate,
)

COMMANDS = [
    archs.register,
    schedule.register,
    export.register,
    validate.register,
    profile.register,
    evaluate.register,
    tune.register,
    demo_clips.register,
    build_plugins.register,
    triton.register,
]
