"""TensorRT engine build (docs/design.md, "TensorRT"): graph -> engine + sidecar.

The only module that imports tensorrt, always inside a function, so the package imports without it.
Written against the TensorRT 10.x and 11.x Python API:
- TensorRT 10: precision from builder flags. fp32 builds a strongly typed network (the graph is
  fp32, so every layer is); fp16 sets BuilderFlag.FP16 with OBEY_PRECISION_CONSTRAINTS and pins the
  vidtldr Saliency/Merge plugin layers and their direct neighbours to fp32.
- TensorRT 11: every network is strongly typed and the weak-typing flags are gone, so precision
  comes from the ONNX graph. An fp32 graph builds fp32; fp16 needs a graph that carries fp16.
- vidtldr nodes: the plugin library is loaded first and the parser is given the graph without the
  vidtldr local-function bodies, so every Saliency/Merge node becomes a plugin layer (before
  TensorRT 10.7 the ONNX parser preferred a model-local function over a registered plugin).
- Output: `X.plan` and `X.plan.json` (engine_sidecar), both written atomically; a failed build leaves
  neither. The timing cache is reused across builds (default `X.timing.cache` beside the engine).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from vidtldr_deploy.constants import DOMAIN as PLUGIN_DOMAIN
from vidtldr_deploy.constants import PLUGIN_NAMESPACE, PLUGIN_VERSION, Precision
from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure
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
from vidtldr_deploy.runtime.tensorrt.quantized import (
    QUANTIZED_PRECISIONS,
    apply_build_plan,
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


def _pin_fp32(trt, network, plugin_inputs: set[str], plugin_outputs: set[str]) -> list[str]:
    """TensorRT 10 weak typing: keep the vidtldr plugin layers, the layers feeding them and the
    layers reading their outputs in fp32 (with OBEY_PRECISION_CONSTRAINTS). Returns layer names."""
    floats = (trt.float32, trt.float16)
    pinned = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 10.12 (strong typing)
        for layer in _layers(network):
            outs = [layer.get_output(j) for j in range(layer.num_outputs)]
            ins = [layer.get_input(j) for j in range(layer.num_inputs)]
            is_plugin = any(t.name in plugin_outputs for t in outs)
            feeds_plugin = any(t.name in plugin_inputs for t in outs)
            reads_plugin = any(t is not None and t.name in plugin_outputs for t in ins)
            if not (is_plugin or feeds_plugin or reads_plugin):
                continue
            if not all(t.dtype in floats for t in outs):
                continue  # shape / index layers: nothing to pin
            layer.precision = trt.float32
            for j in range(len(outs)):
                layer.set_output_type(j, trt.float32)
            pinned.append(layer.name)
    return pinned


def _io_specs(trt, network) -> tuple[dict, dict]:
    inputs = {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        inputs[t.name] = sc.io_spec(tuple(t.shape), dtype_name(trt, t.dtype))
    outputs = {}
    for i in range(network.num_outputs):
        t = network.get_output(i)
        outputs[t.name] = sc.io_spec(tuple(t.shape), dtype_name(trt, t.dtype))
    return inputs, outputs


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


def _parse_metadata_schedule(metadata: dict) -> dict | None:
    raw = metadata.get("schedule")
    if raw is None:
        return None
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return {"spec": str(raw)}


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp32",
    workspace_mib: int | None = None,
    plugin_library: str | Path | None = None,
    timing_cache: str | Path | None = None,
    metadata: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Build `engine_path` (and `engine_path`.json) from an exported graph; returns the sidecar.

    metadata: the graph's vidtldr metadata (export.onnx_export.read_metadata); read from the graph
    when None. plugin_library: libvidtldr_plugins (default: $VIDTLDR_PLUGIN_DIR or plugins/build),
    loaded only when the graph holds vidtldr nodes.
    """
    import onnx

    from vidtldr_deploy.export.metadata import read_metadata

    trt = require_tensorrt()
    log = log or (lambda _msg: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    precision = Precision.parse(precision)
    if not onnx_path.is_file():
        raise InputError(f"ONNX file {onnx_path} does not exist")
    if not engine_path.parent.is_dir():
        raise InputError(
            f"output directory {engine_path.parent} does not exist: create it or choose another -o path"
        )
    if workspace_mib is not None and workspace_mib <= 0:
        raise InputError(f"--workspace must be a positive number of MiB, got {workspace_mib}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as err:  # protobuf decode errors have no common base
        raise InputError(f"{onnx_path} is not a readable ONNX file: {err}") from err
    metadata = dict(metadata) if metadata is not None else read_metadata(model)
    onnx_sha256 = sha256_file(onnx_path)
    strongly_typed_only = is_strongly_typed_only(trt)
    qplan = None
    if precision in QUANTIZED_PRECISIONS:  # explicit quantization: the graph carries Q/DQ
        qplan = quantized_build_plan(
            trt, precision, graph_qdq_types(model), gpu_info()["compute_capability"]
        )

    # vidtldr nodes: plugins must be registered, and must be what the parser uses.
    nodes = _vidtldr_nodes(model)
    ops = sorted({n.op_type for n in nodes})
    plugin_path: Path | None = None
    plugin_sha256: str | None = None
    plugin_inputs = {name for n in nodes for name in n.input if name}
    plugin_outputs = {name for n in nodes for name in n.output if name}
    if nodes:
        plugin_path = plugin_library_for(ops, plugin_library)
        load_plugin_library(plugin_path, ops)
        missing = [op for op, ok in registered_plugin_ops(trt, ops).items() if not ok]
        if missing:
            op = missing[0]
            raise EnvironmentProblem(
                f"the graph holds {PLUGIN_DOMAIN}::{op} nodes, but no TensorRT plugin creator "
                f"{op!r} (namespace {PLUGIN_NAMESPACE!r}, version {PLUGIN_VERSION!r}) is registered "
                f"after loading {plugin_path}: rebuild the plugin library for this TensorRT "
                f"({trt.__version__}) with `vidtldr build-plugins`, or export with --merge-impl onnx"
            )
        plugin_sha256 = sha256_file(plugin_path)
        # Without a local function of the same name the parser's only route is the plugin importer
        # (TensorRT < 10.7 prefers a model-local function over a registered plugin).
        kept = [f for f in model.functions if f.domain != PLUGIN_DOMAIN]
        del model.functions[:]
        model.functions.extend(kept)

    notes: list[str] = []
    logger = process_logger(trt)
    messages = logger.messages
    builder = trt.Builder(logger)
    # fp32 and quantized graphs: strongly typed where TensorRT 10 offers it for fp32; a Q/DQ graph on
    # TensorRT 10 builds weakly typed with only the INT8 flag, so every unquantized layer stays fp32.
    strongly_typed = strongly_typed_only or precision == "fp32"
    flags = 0
    if strongly_typed and not strongly_typed_only:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    t0 = time.perf_counter()
    if not parser.parse(model.SerializeToString(), str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        detail = "\n".join(f"  {e}" for e in errors[:8]) or "  (no parser error recorded)"
        raise RuntimeFailure(
            f"TensorRT's ONNX parser rejected {onnx_path}:\n{detail}{errors_tail(messages)}"
        )

    plugin_layers = [layer for layer in _layers(network) if layer.type == trt.LayerType.PLUGIN_V3]
    if nodes and len(plugin_layers) < len(nodes):
        raise EnvironmentProblem(
            f"{onnx_path} holds {len(nodes)} {PLUGIN_DOMAIN} nodes but the parsed network has only "
            f"{len(plugin_layers)} plugin layers: the plugin library {plugin_path} was not used"
        )

    config = builder.create_builder_config()
    pinned: list[str] = []
    graph_has_half = _network_has_half(trt, network)
    if qplan is not None:
        apply_build_plan(trt, config, qplan)
        for note in qplan.notes:
            log(note)
    elif precision == "fp16":
        if strongly_typed_only:
            if not graph_has_half:
                raise InputError(
                    f"TensorRT {trt.__version__} networks are always strongly typed: the precision comes "
                    f"from the ONNX graph, and {onnx_path} is fp32. Build with --precision fp32, use "
                    "TensorRT 10 for an fp16 engine from this graph, or convert the graph to mixed "
                    "precision first (e.g. ModelOpt AutoCast, keeping the vidtldr Saliency/Merge nodes "
                    "and their inputs in fp32)"
                )
        else:
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            pinned = _pin_fp32(trt, network, plugin_inputs, plugin_outputs)
    elif graph_has_half:
        raise InputError(
            f"{onnx_path} carries fp16 tensors, and a strongly typed build keeps them: pass --precision fp16"
        )
    tf32 = precision not in ("fp32", *QUANTIZED_PRECISIONS)
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: validated against PyTorch fp32
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)

    cache_path = (
        Path(timing_cache) if timing_cache is not None else default_timing_cache(engine_path)
    )
    _, cache_reused = _setup_timing_cache(trt, config, cache_path, notes)
    for note in notes:
        log(note)

    log(f"building the TensorRT {trt.__version__} engine ({precision}) from {onnx_path}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeFailure(
            f"TensorRT could not build an engine from {onnx_path}{errors_tail(messages)}"
        )
    engine_bytes = memoryview(serialized)
    seconds = time.perf_counter() - t0

    inputs, outputs = _io_specs(trt, network)
    gpu = gpu_info()
    sidecar = sc.make_sidecar(
        tensorrt_version=trt.__version__,
        cuda_version=gpu["cuda_version"],
        gpu_name=gpu["gpu_name"],
        compute_capability=gpu["compute_capability"],
        precision=precision,
        inputs=inputs,
        outputs=outputs,
        schedule=_parse_metadata_schedule(metadata),
        onnx_path=onnx_path,
        onnx_sha256=onnx_sha256,
        plugin_library=plugin_path,
        plugin_library_sha256=plugin_sha256,
        arch=metadata.get("arch"),
        merge_impl=metadata.get("merge_impl"),
        checkpoint=metadata.get("checkpoint"),
        checkpoint_sha256=metadata.get("checkpoint_sha256"),
        plugin_layers=len(plugin_layers),
        build={
            "quantization": qplan.to_dict() if qplan is not None else None,
            "calibration": _json_or_none(metadata.get("calibration")),
            "strongly_typed": strongly_typed,
            "tf32": tf32,
            "fp32_pinned_layers": len(pinned),
            "workspace_mib": workspace_mib,
            "timing_cache": str(cache_path),
            "timing_cache_reused": cache_reused,
            "seconds": round(seconds, 2),
            "exporter_version": metadata.get("version"),
        },
    )
    sidecar = sc.write_engine_and_sidecar(engine_path, engine_bytes, sidecar)
    _save_timing_cache(config, cache_path, notes)
    return sidecar
