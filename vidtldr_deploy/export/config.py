"""Export configs: every export option from a TOML file (mmdeploy-style deploy configs), with
command-line flags overriding it. Unknown keys are errors, so a typo never silently does nothing."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from vidtldr_deploy.constants import EXPORT_MERGE_IMPLS as MERGE_IMPLS
from vidtldr_deploy.constants import EXPORT_MERGE_METHODS, Precision
from vidtldr_deploy.errors import InputError, ProblemCollector
from vidtldr_deploy.export.metadata import check_graph_form, check_opset

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib


# A static batch beyond this is a typo: TensorRT profiles and every runtime's buffers are sized by it.
MAX_BATCH = 4096
_FLAGS = {"frames": "--frames", "ckpt_frames": "--ckpt-frames", "batch": "--batch",
          "opset": "--opset", "workspace_mib": "--workspace"}  # fmt: skip


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tolerance_problems(tolerances) -> list[str]:
    if not isinstance(tolerances, dict):
        return [f"tolerances must be a table of numbers ([tolerances] max_abs = 1e-3, ...), "
                f"got {tolerances!r} ({type(tolerances).__name__})"]  # fmt: skip
    return [
        f"tolerances.{key} must be a number, got {value!r} ({type(value).__name__})"
        for key, value in tolerances.items()
        if isinstance(value, bool) or not isinstance(value, (int, float))
    ]


@dataclass
class ExportConfig:
    arch: str | None = None
    frames: int | None = None
    ckpt_frames: int | None = None
    batch: int = 1
    schedule: str | None = None
    merge_impl: str = "onnx"
    method: str = "vidtldr"  # constants.MergeMethod: vidtldr or tome
    opset: int = 18
    graph_form: str = "portable"  # export/metadata.py, GRAPH_FORMS
    max_batch: int | None = None  # a dynamic batch 1..max_batch (ExportSpec.max_batch)
    opt_batch: int | None = None  # the engine's optimisation-profile batch (default max_batch)
    precision: str = "fp32"
    workspace_mib: int | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def check(self, where: str = "") -> ExportConfig:
        """Refuse values no export can take, all at once; `where` names the file they came from."""
        prefix = f"{where}: " if where else ""
        with ProblemCollector() as problems:
            for problem in self._problems():
                problems.add(prefix + problem)
        return self

    def _problems(self) -> list[str]:
        out = []
        for name, minimum in (("frames", 1), ("ckpt_frames", 1), ("batch", 1), ("opset", 1),
                              ("workspace_mib", 1)):  # fmt: skip
            value = getattr(self, name)
            flag = _FLAGS.get(name, name)
            if value is None and name != "batch":
                continue
            if not _is_int(value):
                out.append(f"{flag} must be a whole number, got {value!r} ({type(value).__name__})")
            elif value < minimum:
                out.append(f"{flag} must be at least {minimum}, got {value}")
            elif name == "batch" and value > MAX_BATCH:
                out.append(
                    f"--batch {value} is larger than any static batch an engine takes "
                    f"(at most {MAX_BATCH})"
                )
        for name in ("arch", "schedule", "description"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                out.append(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        if self.merge_impl not in MERGE_IMPLS:
            out.append(
                f"--merge-impl must be one of {', '.join(MERGE_IMPLS)}, got {self.merge_impl!r}"
            )
        if self.method not in EXPORT_MERGE_METHODS:
            out.append(
                f"--method must be one of {', '.join(EXPORT_MERGE_METHODS)} for an export, "
                f"got {self.method!r}"
            )
        try:
            Precision.parse(self.precision)
        except InputError as err:
            out.append(str(err))
        if self.max_batch is not None and (
            not _is_int(self.max_batch) or not 2 <= self.max_batch <= MAX_BATCH
        ):
            out.append(
                f"--max-batch must be a whole number in 2..{MAX_BATCH}, got {self.max_batch!r}"
            )
        out.extend(self._opt_batch_problems())
        out.extend(_tolerance_problems(self.tolerances))
        for check in (
            lambda: check_opset(self.opset),
            lambda: check_graph_form(self.graph_form, self.merge_impl),
        ):
            try:
                check()
            except InputError as err:
                out.append(str(err))
        return out

    def _opt_batch_problems(self) -> list[str]:
        if self.opt_batch is None:
            return []
        if self.max_batch is None:
            return [f"--opt-batch {self.opt_batch!r} needs --max-batch: a static-batch engine "
                    "has one batch to optimise for"]  # fmt: skip
        if _is_int(self.max_batch) and (
            not _is_int(self.opt_batch) or not 1 <= self.opt_batch <= self.max_batch
        ):
            return [f"--opt-batch must be a whole number in 1..{self.max_batch} (the --max-batch), "
                    f"got {self.opt_batch!r}"]  # fmt: skip
        return []

    def override(self, **flags) -> ExportConfig:
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
        raise InputError(f"config {path} does not exist")
    if path.is_dir():
        raise InputError(f"config {path} is a directory: give an export config .toml file")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"config {path} is not valid TOML: {err}") from err
    except OSError as err:
        raise InputError(f"config {path} cannot be read: {err.strerror or err}") from err
    if isinstance(data.get("export"), dict):
        data = data["export"]
    # Accept a flat file or one with an [export] table (taken above).
    allowed = {f.name for f in fields(ExportConfig)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(
            f"config {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return ExportConfig(**data).check(f"config {path}")
