"""A command's target, resolved once (docs/design.md, "Targets")."""

from vidtldr_deploy.target.resolver import Target, TargetKind, resolve_served, resolve_target

__all__ = ["Target", "TargetKind", "resolve_served", "resolve_target"]
