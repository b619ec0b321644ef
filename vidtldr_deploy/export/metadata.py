"""What an exported graph says about itself: the `vidtldr.*` metadata_props written at export and
read back by validation, profiling, the engine build and serving (docs/design.md, "ONNX contract")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import DOMAIN, META_PREFIX, MergeImpl, MergeMethod, Precision
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError

DEFAULT_OPSET = 18
# Below 18 torch.onnx's dynamo exporter silently writes opset 18 anyway (its down-conversion
# fails on the opset-18 Reduce* forms); above 20 TensorRT 10.3 (JetPack 6) cannot parse the graph.
MIN_OPSET, MAX_OPSET = 18, 20

# How a `--merge-impl plugin` graph carries its vidtldr nodes (docs/deploy-jetson.md):
# - portable: vidtldr::Saliency/Merge plus their local functions, so every runtime can run it;
# - trt: the same nodes without local functions, for trtexec and Polygraphy (TensorRT before 10.7
#   parses a local function instead of using the plugin);
# - trt-ep: nodes in ONNX Runtime's `trt.plugins` domain, no local functions: the only domain
#   whose custom nodes ONNX Runtime's TensorRT execution provider hands to TensorRT plugins.
GRAPH_FORMS = ("portable", "trt", "trt-ep")
TRT_EP_DOMAIN = "trt.plugins"


class GraphFormError(InputError):
    """A graph written without local functions: ONNX Runtime (CPU/CUDA) cannot run it."""


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(
            f"--opset must be in {MIN_OPSET}..{MAX_OPSET} (the opsets the exporter writes and "
            f"TensorRT 10 parses), got {opset}"
        )
    return opset


def check_graph_form(form: str, merge_impl: str) -> str:
    if form not in GRAPH_FORMS:
        raise InputError(f"--graph-form must be one of {', '.join(GRAPH_FORMS)}, got {form!r}")
    if form != "portable" and MergeImpl.parse(merge_impl) is not MergeImpl.CUSTOM:
        raise InputError(
            f"--graph-form {form} shapes the vidtldr plugin nodes: use it with --merge-impl plugin"
        )
    return form


def plugin_domain(form: str) -> str:
    return TRT_EP_DOMAIN if form == "trt-ep" else DOMAIN


def has_local_functions(form: str) -> bool:
    return form == "portable"


@dataclass(frozen=True)
class ExportSpec:
    """What a graph was exported as: everything needed to rebuild its PyTorch reference."""

    arch: str
    frames: int
    batch: int
    schedule: MergeSchedule
    merge_impl: str = "onnx"
    opset: int = DEFAULT_OPSET
    checkpoint_sha256: str = ""
    checkpoint: str = ""
    model: str = ""  # what reports call it, when not the registry name (a custom-size HF folder)
    graph_form: str = "portable"
    method: str = MergeMethod.VIDTLDR.value  # ToMe graphs have Merge steps and no Saliency
    # A dynamic batch dimension 1..max_batch (`batch` is then max_batch, what validation feeds);
    # None: the static `batch`. Token counts stay static per clip either way.
    max_batch: int | None = None

    @property
    def impl(self) -> MergeImpl:
        return MergeImpl.parse(self.merge_impl, allowed=("onnx", "plugin"))

    @property
    def merge_method(self) -> MergeMethod:
        return MergeMethod.parse(self.method, allowed=("vidtldr", "tome"))

    def metadata(self, model) -> dict[str, str]:
        side = model.cfg.img_size
        return {
            "version": __version__,
            "arch": self.arch,
            "model": self.model or self.arch,
            "frames": str(self.frames),
            "batch": str(self.batch),
            "input_shape": json.dumps([self.batch, 3, self.frames, side, side]),
            "outputs": json.dumps(list(model.output_names)),
            "merge_impl": self.impl.export_name,
            "method": self.merge_method.value,
            "schedule": json.dumps(self.schedule.to_dict()),
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint": self.checkpoint,
            "opset": str(self.opset),
            "graph_form": self.graph_form,
            # Read by validation: without local functions ONNX Runtime cannot run the graph.
            "local_functions": "true" if has_local_functions(self.graph_form) else "false",
            "max_batch": "" if self.max_batch is None else str(self.max_batch),
        }


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The `vidtldr.*` metadata_props of an exported graph, without the prefix."""
    return {
        p.key.removeprefix(META_PREFIX): p.value
        for p in model.metadata_props
        if p.key.startswith(META_PREFIX)
    }


@dataclass(frozen=True)
class GraphDescription:
    """What an exported graph says about itself, read and checked once (`describe_graph`): every
    command that opens a graph reads these fields, never the raw metadata strings."""

    path: Path
    arch: str
    model: str  # what reports call it
    frames: int
    input_shape: tuple[int, ...]  # (B, 3, T, H, W)
    spec: str  # the schedule as it was asked for
    rs: tuple[int, ...]  # resolved per-layer r
    schedule: dict  # the recorded schedule, as MergeSchedule.to_dict wrote it
    precision: Precision
    merge_impl: str
    graph_form: str
    local_functions: bool
    checkpoint: str  # recorded source: a path, demo, or demo:<arch>:seed<N>
    checkpoint_sha256: str
    outputs: tuple[str, ...]
    metadata: dict[str, str] = field(repr=False)  # the raw `vidtldr.*` strings, for reports
    method: MergeMethod = MergeMethod.VIDTLDR  # graphs from before methods were recorded: vidtldr
    max_batch: int | None = None  # a dynamic batch 1..max_batch (export --max-batch); None: static

    @property
    def batch(self) -> int:
        return self.input_shape[0]


def describe_graph(path: str | Path) -> GraphDescription:
    """Read an exported graph's description (no weights loaded); a missing, unreadable or
    non-vidtldr file, or a malformed field, is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX file {path} does not exist")
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf decode errors have no common base
        raise InputError(f"{path} is not a readable ONNX file: {err}") from err
    return description_from_metadata(read_metadata(graph), path)


def _tampered(path, key: str, value: object, expected: str) -> InputError:
    text = str(value)
    shown = text if len(text) <= 60 else text[:60] + "..."
    return InputError(
        f"{path}: metadata vidtldr.{key} = {shown!r} is not {expected}: the graph's metadata "
        f"was edited or damaged; re-export it with vidtldr export"
    )


def description_from_metadata(meta: dict[str, str], path: str | Path) -> GraphDescription:
    """Each field checked: a graph is a file anyone can edit, and a tampered value must be a named
    error (exit 2), not a crash."""
    if "arch" not in meta:
        raise InputError(
            f"{path} carries no vidtldr metadata: validate graphs written by vidtldr-export"
        )
    raw = meta.get("frames", "")
    if not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise _tampered(path, "frames", raw, "a positive frame count")
    frames = int(raw)
    try:
        shape = json.loads(meta.get("input_shape", ""))
    except ValueError:
        shape = None
    if not (isinstance(shape, list) and len(shape) == 5
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):  # fmt: skip
        raise _tampered(path, "input_shape", meta.get("input_shape", ""), "[B, 3, T, H, W]")
    if shape[2] != frames:
        raise _tampered(path, "frames", raw, f"the input shape's {shape[2]} frames")
    schedule = recorded_schedule(meta, path)
    try:
        precision = Precision.parse(
            meta.get("precision", "fp32"), tuple(p.value for p in Precision)
        )
    except InputError:
        raise _tampered(path, "precision", meta.get("precision"), "a precision") from None
    merge_impl = meta.get("merge_impl", "onnx")
    try:
        MergeImpl.parse(merge_impl)
    except InputError:
        raise _tampered(path, "merge_impl", merge_impl, "onnx or plugin") from None
    try:
        outputs = json.loads(meta.get("outputs", "[]"))
    except ValueError:
        outputs = None
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise _tampered(path, "outputs", meta.get("outputs"), "a JSON list of output names")
    method = meta.get("method", MergeMethod.VIDTLDR.value)
    try:
        method = MergeMethod.parse(method, allowed=("vidtldr", "tome"))
    except InputError:
        raise _tampered(path, "method", method, "vidtldr or tome") from None
    return GraphDescription(
        path=Path(path), arch=meta["arch"], model=meta.get("model") or meta["arch"],
        frames=frames, input_shape=tuple(shape), spec=schedule["spec"],
        rs=tuple(row["r"] for row in schedule.get("layers", [])), schedule=schedule, precision=precision,
        merge_impl=merge_impl, graph_form=meta.get("graph_form", "portable"),
        local_functions=meta.get("local_functions") != "false",
        checkpoint=meta.get("checkpoint", ""), checkpoint_sha256=meta.get("checkpoint_sha256", ""),
        outputs=tuple(outputs), metadata=dict(meta), method=method,
        max_batch=recorded_max_batch(meta, path),
    )  # fmt: skip


def recorded_max_batch(meta: dict[str, str], path: str | Path) -> int | None:
    """The `vidtldr.max_batch` entry: the upper end of a dynamic batch, None for a static one."""
    raw = meta.get("max_batch", "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise _tampered(path, "max_batch", raw, "a positive batch size")
    return int(raw)


def recorded_schedule(meta: dict[str, str], path: str | Path) -> dict:
    """The `vidtldr.schedule` entry, checked: a "spec" string and layers with a whole r each."""
    text = meta.get("schedule", "")
    if not text:
        raise InputError(f"{path} has no vidtldr schedule metadata: was it exported by vidtldr?")
    try:
        schedule = json.loads(text) if len(text) <= 1_000_000 else None
    except ValueError:
        schedule = None
    if not isinstance(schedule, dict) or not isinstance(schedule.get("spec"), str):
        raise _tampered(path, "schedule", text, 'JSON with a "spec" string')
    layers = schedule.get("layers", [])
    if not isinstance(layers, list) or not all(
        isinstance(row, dict)
        and isinstance(row.get("r"), int)
        and not isinstance(row["r"], bool)
        and row["r"] >= 0
        for row in layers
    ):
        raise _tampered(path, "schedule", text, "layers with a whole r each")
    return schedule


def require_local_functions(meta: dict[str, str], path: object) -> None:
    """Refuse, by name, a graph whose vidtldr nodes have no local functions to run them."""
    if meta.get("local_functions") == "false":
        form = meta.get("graph_form", "trt")
        raise GraphFormError(
            f"{path} was exported with --graph-form {form}: its vidtldr nodes have no local "
            "functions, so ONNX Runtime cannot run it (it is for TensorRT with the vidtldr "
            "plugin library). Validate the --graph-form portable export of the same model instead"
        )
