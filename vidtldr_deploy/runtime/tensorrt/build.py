"""TensorRT engine build (docs/design.md, "TensorRT"): graph -> engine + sidecar, in four steps.

1. parse (`parse_network`): the plugin library (resolved once for the run) is loaded first and the
   parser is given the graph without the vidtldr local-function bodies, so every Saliency/Merge
   node becomes a plugin layer (before TensorRT 10.7 the ONNX parser preferred a model-local
   function over a registered plugin).
2. plan (`make_precision_plan`): the network's layers read into plain data and handed to the pure
   precision plan (precision_plan.py): builder flags, and which layers stay fp32.
3. build (`build_serialized`): the plan applied to the builder config, the timing cache reused
   across builds (default `X.timing.cache` beside the engine).
4. write: `X.plan` and `X.plan.json` (`engine_sidecar`), both written atomically; a failed build
   leaves neither.

tensorrt is imported only in runtime/tensorrt/, always inside a function, so the package imports
without it. Written against the TensorRT 10.x and 11.x Python API: TensorRT 10 takes precision
from builder flags, TensorRT 11 networks are always strongly typed (precision from the graph).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidtldr_deploy.constants import DOMAIN as PLUGIN_DOMAIN
from vidtldr_deploy.constants import PLUGIN_NAMESPACE, PLUGIN_VERSION, Precision
from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure
from vidtldr_deploy.export.metadata import GraphDescription
from vidtldr_deploy.files import sha256_file
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.runtime.tensorrt.environment import (
    errors_tail,
    gpu_info,
    is_strongly_typed_only,
    process_logger,
    require_tensorrt,
)
from vidtldr_deploy.runtime.tensorrt.plugins import (
    load_plugin_library,
    plugin_library_for,
    registered_plugin_ops,
)
from vidtldr_deploy.runtime.tensorrt.precision_plan import (
    NORMALIZATION,
    OTHER,
    PLUGIN,
    LayerInfo,
    PrecisionPlan,
    TensorRTFeatures,
    plan_precision,
    strongly_typed_network,
)
from vidtldr_deploy.runtime.tensorrt.quantized import (
    QUANTIZED_PRECISIONS,
    QuantizedBuildPlan,
    graph_qdq_types,
    quantized_build_plan,
)


def default_timing_cache(engine_path: str | Path) -> Path:
    """`engine.plan` -> `engine.timing.cache` beside it."""
    return Path(engine_path).with_suffix(".timing.cache")


def _vidtldr_nodes(model) -> list:
    return [n for n in model.graph.node if n.domain == PLUGIN_DOMAIN]


def dtype_name(trt, dtype) -> str:
    names = {
        "float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int8": "int8",
        "int32": "int32", "int64": "int64", "bool": "bool", "uint8": "uint8",
    }  # fmt: skip
    for attr, name in names.items():
        if hasattr(trt, attr) and dtype == getattr(trt, attr):
            return name
    return str(dtype).split(".")[-1].lower()


def _layers(network):
    return [network.get_layer(i) for i in range(network.num_layers)]


def _network_has_half(trt, network) -> bool:
    for layer in _layers(network):
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in (trt.float16, getattr(trt, "bfloat16", trt.float16)):
                return True
    return any(network.get_input(i).dtype == trt.float16 for i in range(network.num_inputs))


def _io_specs(trt, network, batch: sc.BatchProfile | None) -> tuple[dict, dict]:
    """Every I/O tensor's shape and type; a dynamic batch is recorded at its max."""

    def spec(t) -> dict:
        shape = [int(d) for d in t.shape]
        if batch is not None and shape and shape[0] < 0:
            shape[0] = batch.max
        return sc.io_spec(shape, dtype_name(trt, t.dtype))

    inputs = {t.name: spec(t) for t in map(network.get_input, range(network.num_inputs))}
    outputs = {t.name: spec(t) for t in map(network.get_output, range(network.num_outputs))}
    return inputs, outputs


def batch_profile_for(graph: GraphToBuild, opt_batch: int | None) -> sc.BatchProfile | None:
    """The optimisation profile of a graph exported with --max-batch N: min 1, opt `opt_batch`
    (default N), max N. Checked before the parse; None for a static-batch graph."""
    max_batch = graph.description.max_batch
    if max_batch is None:
        if opt_batch is not None:
            raise InputError(
                f"--opt-batch {opt_batch}: {graph.path} has a static batch; export it with "
                "--max-batch N for a dynamic-batch engine"
            )
        return None
    opt = max_batch if opt_batch is None else opt_batch
    if isinstance(opt, bool) or not isinstance(opt, int) or not 1 <= opt <= max_batch:
        raise InputError(
            f"--opt-batch must be a whole number in 1..{max_batch} ({graph.path} was exported "
            f"with --max-batch {max_batch}), got {opt!r}"
        )
    return sc.BatchProfile(1, opt, max_batch)


def check_network_batch(parsed: ParsedNetwork, batch: sc.BatchProfile) -> None:
    """A dynamic-batch network has a dynamic first dim on every input and output and nothing
    else dynamic (token counts are static per clip)."""
    network = parsed.network
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    for t in tensors:
        shape = [int(d) for d in t.shape]
        if shape[:1] != [-1] or any(d < 0 for d in shape[1:]):
            raise InputError(
                f"{parsed.source}: {t.name} has shape {shape} in TensorRT, but a graph exported "
                f"with --max-batch {batch.max} has a dynamic first dim only: export it again"
            )


def add_batch_profile(network, builder, config, batch: sc.BatchProfile, source: Path) -> None:
    """One optimisation profile over every network input: batch min..max, the rest static."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        profile.set_shape(t.name, *batch.shapes(tuple(t.shape)[1:]))
    if config.add_optimization_profile(profile) < 0:
        raise RuntimeFailure(f"TensorRT refused the batch profile {batch.to_dict()} for {source}")


def _setup_timing_cache(trt, config, path: Path, notes: list[str]):
    data = b""
    if path.is_file():
        data = path.read_bytes()
    cache = config.create_timing_cache(data)
    if cache is None and data:
        notes.append(f"timing cache {path} is unreadable: starting a new one")
        data, cache = b"", config.create_timing_cache(b"")
    if cache is None:
        return None, False
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        notes.append(
            f"timing cache {path} is from another GPU or TensorRT version: starting a new one"
        )
        cache = config.create_timing_cache(b"")
        data = b""
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache, bool(data)


def _save_timing_cache(config, path: Path, notes: list[str]) -> None:
    from vidtldr_deploy.files import atomic_output

    try:
        cache = config.get_timing_cache()
        if cache is None:
            return
        blob = cache.serialize()
        with atomic_output(path, suffix=".cache") as tmp:
            with open(tmp, "wb") as f:
                f.write(memoryview(blob))
    except Exception as err:  # noqa: BLE001 - a cache that cannot be saved must not fail the build
        notes.append(f"could not save the timing cache {path}: {err}")


def _json_or_none(raw: str | None):
    try:
        return json.loads(raw) if raw else None
    except (TypeError, json.JSONDecodeError):
        return {"raw": str(raw)}


@dataclass
class GraphToBuild:
    """Step 1's input: the graph as read once (its checked description, hash and vidtldr ops)."""

    path: Path
    model: Any  # onnx.ModelProto
    description: GraphDescription  # export/metadata.py: the one reader of the graph's metadata
    sha256: str
    ops: list[str]  # vidtldr op types in the graph ("Saliency", "Merge")
    nodes: int  # vidtldr nodes in the graph


@dataclass
class ParsedNetwork:
    """Step 1's output: the TensorRT network and what the later steps need from it."""

    source: Path  # the graph
    builder: Any
    network: Any
    messages: list[str]
    strongly_typed: bool
    plugin_layers: int
    plugin_path: Path | None
    plugin_sha256: str | None
    started: float  # perf_counter at the parse: the build time reported covers parse and build


def read_graph(onnx_path: Path) -> GraphToBuild:
    """The graph loaded once with its weights, its metadata read and checked by the one reader
    (a malformed field is an InputError naming it, before TensorRT sees the graph)."""
    import onnx

    from vidtldr_deploy.export.metadata import description_from_metadata, read_metadata

    try:
        model = onnx.load(str(onnx_path))
    except Exception as err:  # protobuf decode errors have no common base
        raise InputError(f"{onnx_path} is not a readable ONNX file: {err}") from err
    nodes = _vidtldr_nodes(model)
    return GraphToBuild(
        onnx_path, model, description_from_metadata(read_metadata(model), onnx_path),
        sha256_file(onnx_path), sorted({n.op_type for n in nodes}), len(nodes),
    )  # fmt: skip


def check_build_request(
    onnx_path: Path, engine_path: Path, precision: str, workspace_mib: int | None
) -> None:
    precision = Precision.parse(precision)
    if not onnx_path.is_file():
        raise InputError(f"ONNX file {onnx_path} does not exist")
    if not engine_path.parent.is_dir():
        raise InputError(
            f"output directory {engine_path.parent} does not exist: create it or choose another -o path"
        )
    if workspace_mib is not None and workspace_mib <= 0:
        raise InputError(f"--workspace must be a positive number of MiB, got {workspace_mib}")


def load_plugins(trt, graph: GraphToBuild, plugin_library: str | Path | None) -> Path | None:
    """The plugin library a graph with vidtldr nodes needs, loaded and checked; None without
    such nodes. `plugin_library` is the path resolved once for the run (None: resolve here)."""
    if not graph.nodes:
        return None
    plugin_path = plugin_library_for(graph.ops, plugin_library)
    load_plugin_library(plugin_path, graph.ops)
    missing = [op for op, ok in registered_plugin_ops(trt, graph.ops).items() if not ok]
    if missing:
        op = missing[0]
        raise EnvironmentProblem(
            f"the graph holds {PLUGIN_DOMAIN}::{op} nodes, but no TensorRT plugin creator "
            f"{op!r} (namespace {PLUGIN_NAMESPACE!r}, version {PLUGIN_VERSION!r}) is registered "
            f"after loading {plugin_path}: rebuild the plugin library for this TensorRT "
            f"({trt.__version__}) with `vidtldr build-plugins`, or export with --merge-impl onnx"
        )
    return plugin_path


def parse_network(
    trt, graph: GraphToBuild, strongly_typed: bool, plugin_library: str | Path | None
) -> ParsedNetwork:
    """Step 1: the graph parsed into a TensorRT network, every vidtldr node a plugin layer."""
    plugin_path = load_plugins(trt, graph, plugin_library)
    model = graph.model
    if graph.nodes:
        # Without a local function of the same name the parser's only route is the plugin importer
        # (TensorRT < 10.7 prefers a model-local function over a registered plugin).
        kept = [f for f in model.functions if f.domain != PLUGIN_DOMAIN]
        del model.functions[:]
        model.functions.extend(kept)
    logger = process_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and not is_strongly_typed_only(trt):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    started = time.perf_counter()
    if not parser.parse(model.SerializeToString(), str(graph.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        detail = "\n".join(f"  {e}" for e in errors[:8]) or "  (no parser error recorded)"
        raise RuntimeFailure(
            f"TensorRT's ONNX parser rejected {graph.path}:\n{detail}{errors_tail(logger.messages)}"
        )
    plugin_layers = sum(1 for layer in _layers(network) if layer.type == trt.LayerType.PLUGIN_V3)
    if graph.nodes and plugin_layers < graph.nodes:
        raise EnvironmentProblem(
            f"{graph.path} holds {graph.nodes} {PLUGIN_DOMAIN} nodes but the parsed network has only "
            f"{plugin_layers} plugin layers: the plugin library {plugin_path} was not used"
        )
    return ParsedNetwork(
        graph.path,
        builder, network, logger.messages, strongly_typed, plugin_layers, plugin_path,
        sha256_file(plugin_path) if plugin_path is not None else None, started,
    )  # fmt: skip


def layer_infos(trt, network) -> list[LayerInfo]:
    """The parsed network's layers as the precision plan reads them."""
    floats = (trt.float32, trt.float16)
    kinds = {trt.LayerType.PLUGIN_V3: PLUGIN}
    if hasattr(trt.LayerType, "NORMALIZATION"):
        kinds[trt.LayerType.NORMALIZATION] = NORMALIZATION
    infos = []
    for layer in _layers(network):
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        infos.append(LayerInfo(
            layer.name, kinds.get(layer.type, OTHER),
            tuple(t.name for t in ins if t is not None), tuple(t.name for t in outs),
            all(t.dtype in floats for t in outs),
        ))  # fmt: skip
    return infos


def quantization_plan(trt, graph: GraphToBuild, precision: str) -> QuantizedBuildPlan | None:
    """The Q/DQ build settings of an int8/fp8 build (quantized.py); None for fp32/fp16."""
    if precision not in QUANTIZED_PRECISIONS:
        return None
    return quantized_build_plan(
        trt, precision, graph_qdq_types(graph.model), gpu_info()["compute_capability"]
    )


def make_precision_plan(
    trt, graph: GraphToBuild, parsed: ParsedNetwork, precision: str,
    quantization: QuantizedBuildPlan | None,
) -> PrecisionPlan:  # fmt: skip
    """Step 2: the plan (precision_plan.py) from the parsed network's layers, as data."""
    return plan_precision(
        precision, layer_infos(trt, parsed.network), tensorrt_features(trt),
        _network_has_half(trt, parsed.network), quantization, str(graph.path),
    )  # fmt: skip


def tensorrt_features(trt) -> TensorRTFeatures:
    return TensorRTFeatures(
        trt.__version__, is_strongly_typed_only(trt), hasattr(trt.BuilderFlag, "TF32")
    )


def apply_precision_plan(trt, network, config, plan: PrecisionPlan) -> None:
    """Set the plan's flags on the builder config and pin its fp32 layers."""
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    if not plan.fp32_layers:
        return
    pinned = set(plan.fp32_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 10.12 (strong typing)
        for layer in _layers(network):
            if layer.name in pinned:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)


def build_serialized(
    trt, parsed: ParsedNetwork, plan: PrecisionPlan, workspace_mib: int | None,
    cache_path: Path, log: Callable[[str], None], batch: sc.BatchProfile | None = None,
) -> tuple[memoryview, Any, bool]:  # fmt: skip
    """Step 3: the serialized engine, the builder config (its timing cache is saved after the
    engine is written) and whether the timing cache was reused."""
    config = parsed.builder.create_builder_config()
    apply_precision_plan(trt, parsed.network, config, plan)
    for note in plan.notes:
        log(note)
    if batch is not None:
        add_batch_profile(parsed.network, parsed.builder, config, batch, parsed.source)
        log(f"batch profile: min {batch.min}, opt {batch.opt}, max {batch.max}")
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    notes: list[str] = []
    _, cache_reused = _setup_timing_cache(trt, config, cache_path, notes)
    for note in notes:
        log(note)
    log(f"building the TensorRT {trt.__version__} engine ({plan.precision}) from {parsed.source}")
    serialized = parsed.builder.build_serialized_network(parsed.network, config)
    if serialized is None:
        raise RuntimeFailure(
            f"TensorRT could not build an engine from {parsed.source}{errors_tail(parsed.messages)}"
        )
    return memoryview(serialized), config, cache_reused


def engine_sidecar(
    trt, graph: GraphToBuild, parsed: ParsedNetwork, plan: PrecisionPlan,
    workspace_mib: int | None, cache_path: Path, cache_reused: bool,
    batch: sc.BatchProfile | None = None,
) -> sc.EngineSidecar:  # fmt: skip
    """Step 4's record: what the engine was built from, with and how (runtime/tensorrt/sidecar.py)."""
    inputs, outputs = _io_specs(trt, parsed.network, batch)
    gpu = gpu_info()
    described = graph.description
    return sc.make_sidecar(
        tensorrt_version=trt.__version__,
        cuda_version=gpu["cuda_version"],
        gpu_name=gpu["gpu_name"],
        compute_capability=gpu["compute_capability"],
        precision=plan.precision,
        inputs=inputs,
        outputs=outputs,
        schedule=described.schedule,
        onnx_path=graph.path,
        onnx_sha256=graph.sha256,
        plugin_library=parsed.plugin_path,
        plugin_library_sha256=parsed.plugin_sha256,
        arch=described.arch,
        merge_impl=described.merge_impl,
        checkpoint=described.checkpoint,
        checkpoint_sha256=described.checkpoint_sha256,
        plugin_layers=parsed.plugin_layers,
        batch=batch,
        build={
            "quantization": plan.quantization.to_dict() if plan.quantization else None,
            # Reported as recorded (quantize's own JSON), never used to decide the build.
            "calibration": _json_or_none(described.metadata.get("calibration")),
            "strongly_typed": parsed.strongly_typed,
            "tf32": plan.tf32,
            "fp32_pinned_layers": len(plan.fp32_layers),
            "workspace_mib": workspace_mib,
            "timing_cache": str(cache_path),
            "timing_cache_reused": cache_reused,
            "seconds": round(time.perf_counter() - parsed.started, 2),
            "exporter_version": described.metadata.get("version"),
        },
    )


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp32",
    workspace_mib: int | None = None,
    plugin_library: str | Path | None = None,
    timing_cache: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    opt_batch: int | None = None,
) -> sc.EngineSidecar:
    """Build `engine_path` (and `engine_path`.json) from an exported graph; returns the sidecar.

    A graph exported with --max-batch N gets an optimisation profile (batch min 1, opt
    `opt_batch` (default N), max N) and runs any batch 1..N; its sidecar records the range.

    Parse -> precision plan -> build -> write engine and sidecar. The graph's metadata is read
    through its typed description (export.metadata.description_from_metadata). plugin_library: the
    libvidtldr_plugins resolved for this run (default: $VIDTLDR_PLUGIN_DIR or plugins/build),
    loaded only when the graph holds vidtldr nodes.
    """
    trt = require_tensorrt()
    log = log or (lambda _msg: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    check_build_request(onnx_path, engine_path, precision, workspace_mib)
    graph = read_graph(onnx_path)
    batch = batch_profile_for(graph, opt_batch)
    quantization = quantization_plan(trt, graph, precision)  # refused before any plugin work
    strongly = strongly_typed_network(precision, tensorrt_features(trt))
    parsed = parse_network(trt, graph, strongly, plugin_library)
    if batch is not None:
        check_network_batch(parsed, batch)
    plan = make_precision_plan(trt, graph, parsed, precision, quantization)
    cache_path = (
        Path(timing_cache) if timing_cache is not None else default_timing_cache(engine_path)
    )
    engine_bytes, config, cache_reused = build_serialized(
        trt, parsed, plan, workspace_mib, cache_path, log, batch
    )
    sidecar = engine_sidecar(
        trt, graph, parsed, plan, workspace_mib, cache_path, cache_reused, batch
    )
    sidecar = sc.write_engine_and_sidecar(engine_path, engine_bytes, sidecar)
    notes: list[str] = []
    _save_timing_cache(config, cache_path, notes)
    for note in notes:
        log(note)
    return sidecar
