"""Model families, their presets, checkpoint loading and sources. Importing the package registers
every family (each module calls registry.register on import)."""

from vidtldr_deploy.models import umt, videomae  # noqa: F401  (register their architectures)
