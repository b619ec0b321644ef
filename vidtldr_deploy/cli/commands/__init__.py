"""One module per command; each exposes `register(app)`. The order here is the order of --help."""

from __future__ import annotations

from vidtldr_deploy.cli.commands import (
    archs,
    build_plugins,
    export,
    profile,
    schedule,
    triton,
    validate,
)

COMMANDS = [
    archs.register,
    schedule.register,
    export.register,
    validate.register,
    profile.register,
    build_plugins.register,
    triton.register,
]
