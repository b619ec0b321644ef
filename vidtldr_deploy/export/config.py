"""Export configs: every export option from a TOML file (mmdeploy-style deploy configs), with
command-line flags overriding it. Unknown keys are errors, so a typo never silently does nothing."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from vidtldr_deploy.constants import EXPORT_MERGE_IMPLS as MERGE_IMPLS
from vidtldr_deploy.constants import PRECISIONS
from vidtldr_deploy.errors import InputError, VidTLDRError
from vidtldr_deploy.export.metadata import check_graph_form, check_opset

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib


@dataclass
class ExportConfig:
    arch: str | None = None
    frames: int | None = None
    ckpt_frames: int | None = None
    batch: int = 1
    schedule: str | None = None
    merge_impl: str = "onnx"
    opset: int = 18
    graph_form: str = "portable"  # export/metadata.py, GRAPH_FORMS
    precision: str = "fp32"
    workspace_mib: int | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def check(self, where: str = "") -> "ExportConfig":
        """Refuse values no export can take; `where` names the file they came from, if any."""
        prefix = f"{where}: " if where else ""
        if self.merge_impl not in MERGE_IMPLS:
            raise VidTLDRError(
                f"{prefix}--merge-impl must be one of {', '.join(MERGE_IMPLS)}, got {self.merge_impl!r}"
            )
        if self.precision not in PRECISIONS:
            raise VidTLDRError(
                f"{prefix}--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.batch < 1:
            raise VidTLDRError(f"{prefix}--batch must be at least 1, got {self.batch}")
        try:
            check_opset(self.opset)
            check_graph_form(self.graph_form, self.merge_impl)
        except InputError as err:
            raise InputError(f"{prefix}{err}") from None
        return self

    def override(self, **flags) -> "ExportConfig":
        """A copy with every flag that was given (not None) replacing the config's value."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in flags.items():
            if key not in values:
                raise KeyError(key)
            if value is not None:
                values[key] = value
        return ExportConfig(**values)


def load_export_config(path: str | Path) -> ExportConfig:
    path = Path(path)
    if not path.exists():
        raise VidTLDRError(f"config {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise VidTLDRError(f"config {path} is not valid TOML: {err}") from err
    # Accept a flat file or one with an [export] table.
    data = data.get("export", data)
    allowed = {f.name for f in fields(ExportConfig)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise VidTLDRError(
            f"config {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return ExportConfig(**data).check(f"config {path}")
