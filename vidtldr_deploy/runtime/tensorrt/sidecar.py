"""The `X.plan.json` sidecar (docs/design.md, "TensorRT"): an engine never travels alone.

A TensorRT engine only runs on the TensorRT version, GPU (compute capability) and plugin library it
was built with, and says little about itself when it refuses. The sidecar records what it was built
from and for, and loading compares it with the machine so the user reads what does not match and
what to do. Pure Python: no tensorrt or CUDA import, so it is tested everywhere.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import Precision
from vidtldr_deploy.errors import EnvironmentProblem, InputError
from vidtldr_deploy.files import atomic_output, sha256_bytes, sha256_file

FORMAT = "vidtldr-engine-sidecar"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "format",
    "format_version",
    "toolkit_version",
    "tensorrt_version",
    "cuda_version",
    "gpu_name",
    "compute_capability",
    "precision",
    "inputs",
    "outputs",
    "schedule",
    "onnx_sha256",
    "plugin_library_sha256",
    "engine_sha256",
)


def sidecar_path(engine_path: str | Path) -> Path:
    """`X.plan` -> `X.plan.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def normalize_capability(cc: Any) -> str | None:
    """(8, 7), [8, 7], "8.7", "sm_87", "87" -> "8.7"."""
    if cc is None or cc == "":
        return None
    if isinstance(cc, (tuple, list)):
        return f"{int(cc[0])}.{int(cc[1])}"
    text = str(cc).strip().lower().removeprefix("sm_").removeprefix("sm")
    if "." in text:
        major, minor = text.split(".", 1)
        return f"{int(major)}.{int(minor)}"
    if text.isdigit() and len(text) >= 2:
        return f"{int(text[:-1])}.{int(text[-1])}"
    raise ValueError(f"not a compute capability: {cc!r}")


def sm_name(cc: str | None) -> str:
    """ "8.7" -> "sm_87"."""
    if not cc:
        return "unknown compute capability"
    major, minor = cc.split(".")
    return f"sm_{major}{minor}"


def io_spec(shape, dtype: str) -> dict:
    return {"shape": [int(d) for d in shape], "dtype": str(dtype)}


@dataclass(frozen=True)
class BatchProfile:
    """A dynamic-batch engine's optimisation profile: it runs any batch min..max, tuned for opt.
    The sidecar's inputs and outputs then record their shapes at the max batch."""

    min: int
    opt: int
    max: int

    def __post_init__(self):
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"batch profile needs 1 <= min <= opt <= max, got {self}")

    def shapes(self, static_dims) -> tuple[tuple[int, ...], ...]:
        """The (min, opt, max) shapes TensorRT's profile takes for a tensor (batch, *static_dims)."""
        rest = tuple(int(d) for d in static_dims)
        return tuple((b, *rest) for b in (self.min, self.opt, self.max))

    def to_dict(self) -> dict:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict) -> BatchProfile:
        return cls(int(data["min"]), int(data["opt"]), int(data["max"]))


@dataclass(frozen=True)
class EngineSidecar:
    """The `X.plan.json` record, typed: the one reader (`read_sidecar`, checked) and writers
    (`write_sidecar`, `write_engine_and_sidecar`) go through `from_dict` / `to_dict`, which keep
    the JSON key order and values of the file on disk. Every command reads these fields."""

    tensorrt_version: str
    cuda_version: str | None
    gpu_name: str | None
    compute_capability: str | None  # normalised, like "8.6"
    precision: Precision
    inputs: dict[str, dict]  # name -> {"shape": [...], "dtype": "float32"} (see `io_spec`)
    outputs: dict[str, dict]
    schedule: dict | None
    onnx_sha256: str | None
    plugin_library_sha256: str | None  # None: the engine holds no vidtldr plugin layers
    engine_sha256: str | None
    batch: BatchProfile | None = None  # a dynamic-batch engine's range; None: static batch
    toolkit_version: str = __version__
    created: str | None = None
    arch: str | None = None
    merge_impl: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    onnx: str | None = None  # the graph's path at build time
    plugin_library: str | None = None  # the library's path at build time
    plugin_layers: int = 0
    build: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # keys a newer writer added, kept on rewrite

    @property
    def has_plugin_layers(self) -> bool:
        return bool(self.plugin_library_sha256) or self.plugin_layers > 0

    def to_dict(self) -> dict:
        """The JSON object on disk, keys in the order the writer has always used."""
        data = {key: getattr(self, key) for key in _KEY_ORDER}
        data["precision"] = self.precision.value
        data["batch"] = None if self.batch is None else self.batch.to_dict()
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> EngineSidecar:
        """Fields from a JSON object whose fields were checked (`read_sidecar`)."""
        known = {key: data[key] for key in _KEY_ORDER if key in data}
        known["precision"] = Precision(data["precision"])
        known["compute_capability"] = normalize_capability(data["compute_capability"])
        if data.get("batch") is not None:  # absent (older sidecars) or null: a static batch
            known["batch"] = BatchProfile.from_dict(data["batch"])
        extra = {key: value for key, value in data.items() if key not in _KEY_ORDER}
        return cls(**known, extra=extra)


_KEY_ORDER = (
    "format", "format_version", "toolkit_version", "created", "tensorrt_version", "cuda_version",
    "gpu_name", "compute_capability", "precision", "inputs", "outputs", "batch", "arch",
    "merge_impl", "schedule", "checkpoint", "checkpoint_sha256", "onnx", "onnx_sha256",
    "plugin_library", "plugin_library_sha256", "plugin_layers", "engine_sha256", "build",
)  # fmt: skip


def make_sidecar(
    *,
    tensorrt_version: str,
    cuda_version: str | None,
    gpu_name: str | None,
    compute_capability: Any,
    precision: str,
    inputs: dict[str, dict],
    outputs: dict[str, dict],
    schedule: dict | None,
    onnx_path: str | Path | None = None,
    onnx_sha256: str | None = None,
    plugin_library: str | Path | None = None,
    plugin_library_sha256: str | None = None,
    engine_sha256: str | None = None,
    toolkit_version: str = __version__,
    arch: str | None = None,
    merge_impl: str | None = None,
    checkpoint: str | None = None,
    checkpoint_sha256: str | None = None,
    plugin_layers: int = 0,
    build: dict | None = None,
    batch: BatchProfile | None = None,
) -> EngineSidecar:
    """Everything that decides whether an engine runs here, and what it computes.

    `inputs`/`outputs`: name -> {"shape": [...], "dtype": "float32"} (see `io_spec`).
    `plugin_library_sha256` is None when the engine holds no vidtldr plugin layers. `batch`: the
    optimisation profile of a dynamic-batch engine (its I/O shapes are then at the max batch).
    """
    if onnx_sha256 is None and onnx_path is not None:
        onnx_sha256 = sha256_file(onnx_path)
    return EngineSidecar(
        toolkit_version=toolkit_version,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        tensorrt_version=str(tensorrt_version),
        cuda_version=None if cuda_version is None else str(cuda_version),
        gpu_name=gpu_name,
        compute_capability=normalize_capability(compute_capability),
        precision=Precision(precision),
        inputs=inputs,
        outputs=outputs,
        batch=batch,
        arch=arch,
        merge_impl=merge_impl,
        schedule=schedule,
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint_sha256,
        onnx=None if onnx_path is None else str(onnx_path),
        onnx_sha256=onnx_sha256,
        plugin_library=None if plugin_library is None else str(plugin_library),
        plugin_library_sha256=plugin_library_sha256,
        plugin_layers=int(plugin_layers),
        engine_sha256=engine_sha256,
        build=dict(build or {}),
    )


def _dumps(sidecar: EngineSidecar) -> str:
    return json.dumps(sidecar.to_dict(), indent=2, sort_keys=False) + "\n"


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    """Write `X.plan.json` beside `X.plan`, atomically."""
    path = sidecar_path(engine_path)
    text = _dumps(sidecar)  # serialise first: an unserialisable sidecar writes nothing
    with atomic_output(path, suffix=".json") as tmp:
        tmp.write_text(text)
    return path


def write_engine_and_sidecar(
    engine_path: str | Path, engine: bytes | memoryview, sidecar: EngineSidecar
) -> EngineSidecar:
    """Write the engine and its sidecar (with the engine's sha256 filled in). Both are written to
    temporary files first; the engine moves into place first and its sidecar last. A failed engine
    move leaves the old engine and the old sidecar as they were; a failed sidecar move leaves a new
    engine beside an old sidecar, whose engine_sha256 then refuses it (the check fails closed)."""
    engine_path = Path(engine_path)
    json_path = sidecar_path(engine_path)
    sidecar = replace(sidecar, engine_sha256=sha256_bytes(engine))
    text = _dumps(sidecar)
    with atomic_output(json_path, suffix=".json") as tmp_json:
        tmp_json.write_text(text)
        with atomic_output(engine_path, suffix=".plan") as tmp_engine:
            with open(tmp_engine, "wb") as f:
                f.write(engine)
    return sidecar


def refuse_sidecar(path: Path) -> None:
    """An engine's `.plan.json` given where the engine itself is meant."""
    if path.name.endswith(".plan.json"):
        raise InputError(f"{path} is a sidecar: pass the engine {path.name[:-5]} itself")


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    """Read `X.plan.json` for `X.plan` (or the .json itself), every field checked: the one reader.
    Missing, corrupt or a malformed field is an InputError naming it."""
    engine_path = Path(engine_path)
    path = engine_path if engine_path.name.endswith(".plan.json") else sidecar_path(engine_path)
    if not path.exists():
        raise InputError(
            f"{path} is missing: an engine never travels without its .plan.json, and needs its "
            "sidecar to be run or served (it records the TensorRT version, GPU and plugin library "
            "the engine was built for). Copy it along with the engine, or rebuild the engine on "
            "this device with vidtldr-export ... -o X.plan"
        )
    if path.is_dir():
        raise InputError(f"{path} is a directory, not the engine's sidecar file: remove it and "
                           "rebuild the engine with vidtldr-export ... -o X.plan")  # fmt: skip
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"{path} is not valid JSON ({err}): the sidecar is corrupt; rebuild the engine with "
            "vidtldr-export ... -o X.plan"
        ) from err
    except OSError as err:
        raise InputError(f"{path} cannot be read: {err.strerror or err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f'{path} is not a vidtldr engine sidecar (no "format": "{FORMAT}")')
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InputError(
            f"{path} lacks {', '.join(missing)}: rebuild the engine to get a complete sidecar"
        )
    version = data["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _malformed(path, "format_version", version, "a positive whole number")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{path} has sidecar format {version}, newer than this toolkit reads "
            f"({FORMAT_VERSION}): upgrade vidtldr-deploy (the engine was built by {data['toolkit_version']})"
        )
    try:
        normalize_capability(data["compute_capability"])
    except (ValueError, TypeError, IndexError):
        raise _malformed(
            path, "compute_capability", data["compute_capability"], 'like "8.6"'
        ) from None
    _check_fields(data, path)
    # A blank engine_sha256 is refused by check_sidecar when the engine loads.
    return EngineSidecar.from_dict(data)


def _check_fields(data: dict, path: Path) -> None:
    """Every field a command reads, of the type it is read as: a damaged or edited sidecar is an
    InputError naming the field, never a crash further on."""
    version = data["tensorrt_version"]
    if not isinstance(version, str) or not version.strip():
        raise _malformed(path, "tensorrt_version", version, 'a TensorRT version like "10.7.0"')
    try:
        Precision.parse(data["precision"], tuple(p.value for p in Precision))
    except InputError:
        raise _malformed(path, "precision", data["precision"], "fp32, fp16, int8 or fp8") from None
    for key in ("inputs", "outputs"):
        _check_tensors(path, key, data[key])
    _check_batch(path, data)
    layers = data.get("plugin_layers", 0)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise _malformed(path, "plugin_layers", layers, "a whole number of layers")
    if data["schedule"] is not None and not isinstance(data["schedule"], dict):
        raise _malformed(path, "schedule", data["schedule"], "the schedule as a JSON object")
    if not isinstance(data.get("build", {}), dict):
        raise _malformed(path, "build", data["build"], "the build settings as a JSON object")
    for key in (
        "toolkit_version", "created", "cuda_version", "gpu_name", "arch", "merge_impl",
        "checkpoint", "checkpoint_sha256", "onnx", "onnx_sha256", "plugin_library",
        "plugin_library_sha256", "engine_sha256",
    ):  # fmt: skip
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _malformed(path, key, data[key], "text or null")


def _check_tensors(path: Path, key: str, table: Any) -> None:
    if not isinstance(table, dict) or not table:
        raise _malformed(path, key, table, 'a non-empty {"name": {"shape": [...], "dtype": ...}}')
    for name, spec in table.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise _malformed(path, f"{key}.{name}.shape", shape, "a list of positive dimensions")
        if not isinstance(spec.get("dtype"), str):
            raise _malformed(
                path, f"{key}.{name}.dtype", spec.get("dtype"), 'a type like "float32"'
            )


def _check_batch(path: Path, data: dict) -> None:
    recorded = data.get("batch")
    if recorded is None:
        return
    expected = 'a {"min": 1, "opt": O, "max": N} batch range, 1 <= O <= N'
    ints = isinstance(recorded, dict) and all(
        isinstance(recorded.get(k), int) and not isinstance(recorded.get(k), bool)
        for k in ("min", "opt", "max")
    )
    try:
        profile = BatchProfile.from_dict(recorded) if ints else None
    except ValueError:
        profile = None
    if profile is None:
        raise _malformed(path, "batch", recorded, expected)
    for key in ("inputs", "outputs"):
        for name, spec in data[key].items():
            if spec["shape"][:1] != [profile.max]:
                raise _malformed(
                    path, f"{key}.{name}.shape", spec["shape"],
                    f"a shape at the max batch {profile.max}",
                )  # fmt: skip


def _malformed(path: Path, key: str, value: Any, expected: str) -> InputError:
    return InputError(
        f"{path}: {key} {value!r} is not {expected}: the sidecar is damaged or edited; rebuild the "
        "engine with vidtldr-export ... -o X.plan"
    )


def _capability(value: Any) -> str | None:
    try:
        return normalize_capability(value)
    except (ValueError, TypeError, IndexError):
        return None


def _short(digest: str | None) -> str:
    return (digest or "none")[:12]


def _major(version: str | None) -> str | None:
    return None if not version else str(version).split(".")[0]


def check_sidecar(sidecar: EngineSidecar, runtime: dict) -> list[str]:
    """What keeps this engine from running here, one sentence each (empty: it matches).

    `runtime` keys (each optional; a missing or None value is not checked): tensorrt_version,
    cuda_version, gpu_name, compute_capability, plugin_library (path), plugin_library_sha256
    (of the library that will be loaded; None with a path means none was found), engine_sha256,
    onnx_sha256 (of the graph read beside the engine; `onnx` names it). The check fails closed: the
    sidecar must record engine_sha256, and a key the runtime gives must be known on both sides.
    """
    problems: list[str] = []
    want_engine, have_engine = sidecar.engine_sha256, runtime.get("engine_sha256")
    # Fail closed: a sidecar that cannot vouch for its engine, or a check that has nothing to
    # compare, is a problem, never a pass.
    if not want_engine:
        problems.append(
            "the sidecar records no engine_sha256, so it cannot tell whether the .plan is the "
            "engine it describes: rebuild the engine"
        )
    elif "engine_sha256" in runtime and not have_engine:
        problems.append("the engine file's sha256 could not be computed: check the .plan file")
    if want_engine and have_engine and want_engine != have_engine:
        problems.append(
            f"the engine file (sha256 {_short(have_engine)}) is not the one its sidecar describes "
            f"(sha256 {_short(want_engine)}): the .plan was replaced without its .plan.json; rebuild "
            "the engine"
        )

    want_cc = _capability(sidecar.compute_capability)
    have_cc = _capability(runtime.get("compute_capability"))
    if "compute_capability" in runtime and not (want_cc and have_cc):
        problems.append(
            f"the GPU cannot be compared (engine built for {sm_name(want_cc)}, this GPU reports "
            f"{sm_name(have_cc)}): rebuild the engine on this device"
        )
    want_gpu, have_gpu = sidecar.gpu_name, runtime.get("gpu_name")
    cc_differs = bool(want_cc and have_cc and want_cc != have_cc)
    name_differs = bool(want_gpu and have_gpu and want_gpu != have_gpu)
    if cc_differs or name_differs:
        problems.append(
            f"engine built for {want_gpu or 'an unknown GPU'} ({sm_name(want_cc)}), this GPU is "
            f"{have_gpu or 'unknown'} ({sm_name(have_cc)}): rebuild the engine on this device"
        )

    want_trt, have_trt = sidecar.tensorrt_version, runtime.get("tensorrt_version")
    if "tensorrt_version" in runtime and not (want_trt and have_trt):
        problems.append(
            f"the TensorRT versions cannot be compared (engine: {want_trt or 'not recorded'}, "
            f"here: {have_trt or 'unknown'}): rebuild the engine here"
        )
    if want_trt and have_trt and str(want_trt) != str(have_trt):
        problems.append(
            f"engine built with TensorRT {want_trt}, this is TensorRT {have_trt}: an engine only "
            "loads in the TensorRT version that built it; rebuild the engine here"
        )

    want_cuda, have_cuda = sidecar.cuda_version, runtime.get("cuda_version")
    if want_cuda and have_cuda and _major(want_cuda) != _major(have_cuda):
        problems.append(
            f"engine built with CUDA {want_cuda}, this runtime has CUDA {have_cuda}: rebuild the "
            "engine (and the plugin library) with this CUDA"
        )

    if "onnx_sha256" in runtime:
        want_onnx, have_onnx = sidecar.onnx_sha256, runtime.get("onnx_sha256")
        if not (want_onnx and have_onnx) or want_onnx != have_onnx:
            where = runtime.get("onnx") or "the graph beside the engine"
            problems.append(
                f"{where} (sha256 {_short(have_onnx)}) is not the graph the engine was built from "
                f"(sha256 {_short(want_onnx)}): its metadata would describe another model; rebuild "
                "the engine from this graph, or put the original .onnx beside it"
            )

    want_plugin = sidecar.plugin_library_sha256
    if want_plugin:
        if "plugin_library_sha256" in runtime:
            have_plugin = runtime.get("plugin_library_sha256")
            where = runtime.get("plugin_library") or "the plugin library"
            if have_plugin is None:
                problems.append(
                    f"engine holds vidtldr plugin layers, but no plugin library was found (it was "
                    f"built with {sidecar.plugin_library or 'libvidtldr_plugins.so'}, sha256 "
                    f"{_short(want_plugin)}): pass --plugins, or run vidtldr build-plugins and rebuild "
                    "the engine"
                )
            elif have_plugin != want_plugin:
                problems.append(
                    f"plugin library {where} (sha256 {_short(have_plugin)}) differs from the one the "
                    f"engine was built with (sha256 {_short(want_plugin)}): rebuild the engine with "
                    "this library, or load the library it was built with"
                )
    return problems


def require_sidecar_match(sidecar: EngineSidecar, runtime: dict, engine_path: str | Path) -> None:
    """Raise EnvironmentProblem listing every mismatch between the sidecar and this machine."""
    problems = check_sidecar(sidecar, runtime)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise EnvironmentProblem(f"{engine_path} cannot run here:\n{lines}")


def require_graph_match(
    engine_path: str | Path, onnx_path: str | Path, sidecar: EngineSidecar | None = None
) -> None:
    """The .onnx read beside an engine must be the graph it was built from (its sha256 in the
    sidecar): its metadata rebuilds the PyTorch model the engine is compared with."""
    sidecar = read_sidecar(engine_path) if sidecar is None else sidecar
    runtime = {"onnx_sha256": sha256_file(onnx_path), "onnx": str(onnx_path)}
    problems = [p for p in check_sidecar(sidecar, runtime) if str(onnx_path) in p]
    if problems:
        raise InputError(f"{engine_path}: {problems[0]}")
