"""TensorRT backend (DESIGN.md, "TensorRT"): engine build, plugin loading, engine runner.

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

import ctypes
import json
import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidtldr_deploy.backends import engine_sidecar as sc
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.config import PRECISIONS

PLUGIN_DOMAIN = "vidtldr"  # = export.onnx_functions.DOMAIN / PLUGIN_NAMESPACE
PLUGIN_NAMESPACE = "vidtldr"
PLUGIN_VERSION = "1"
MIN_TENSORRT_MAJOR = 10

_NOT_INSTALLED = (
    "TensorRT is not installed: install it (pip install 'vidtldr-deploy[tensorrt]', or use "
    "NVIDIA's TensorRT container / JetPack) to build engines"
)
_LOADED_LIBRARIES: dict[str, Any] = {}  # resolved path -> TensorRT library handle (or "ctypes")


# -------------------------------------------------------------------------------------------------
# TensorRT import and environment
# -------------------------------------------------------------------------------------------------


def require_tensorrt():
    """Import TensorRT (10 or newer) or say how to get it."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise VidTLDRError(_NOT_INSTALLED) from err
    major = tensorrt_major(trt)
    if major < MIN_TENSORRT_MAJOR:
        raise VidTLDRError(
            f"TensorRT {trt.__version__} is too old: TensorRT 10 or newer is required "
            "(8.x miscomputes ScatterElements with a reduction)"
        )
    return trt


def tensorrt_major(trt) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


def is_strongly_typed_only(trt) -> bool:
    """TensorRT 11 removed weak typing (BuilderFlag.FP16 and the precision constraints)."""
    return tensorrt_major(trt) >= 11 or not hasattr(trt.BuilderFlag, "FP16")


def _torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise VidTLDRError(
            "no CUDA GPU visible to PyTorch: TensorRT engines run on an NVIDIA GPU, and this toolkit "
            "uses PyTorch's CUDA runtime for device buffers (install a CUDA build of PyTorch; on "
            "Jetson, NVIDIA's JetPack wheel)"
        )
    return torch


def gpu_info() -> dict:
    """Name, compute capability and CUDA version of the current GPU (PyTorch first, then
    nvidia-smi); None where unknown."""
    info: dict[str, Any] = {"gpu_name": None, "compute_capability": None, "cuda_version": None}
    try:
        import torch

        info["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            idx = torch.cuda.current_device()
            info["gpu_name"] = torch.cuda.get_device_name(idx)
            info["compute_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(idx))
            return info
    except Exception:  # noqa: BLE001 - any torch/CUDA failure just means "unknown"
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout.strip().splitlines()  # fmt: skip
            if out:
                name, cc = (part.strip() for part in out[0].split(",", 1))
                info["gpu_name"], info["compute_capability"] = name, cc
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return info


# -------------------------------------------------------------------------------------------------
# Plugin library
# -------------------------------------------------------------------------------------------------


def resolve_plugin_library(path: str | Path | None = None) -> Path:
    """The plugin library to load: `path`, else $VIDTLDR_PLUGIN_DIR, else plugins/build."""
    from vidtldr_deploy.backends.plugin_build import find_plugin_library

    if path is not None and not Path(path).exists():
        raise VidTLDRError(
            f"TensorRT plugin library {path} does not exist: build it with `vidtldr build-plugins` "
            "(needs CUDA and TensorRT), or pass --plugins with the path of libvidtldr_plugins.so"
        )
    return find_plugin_library(path)


def plugin_library_for(ops, plugin_library: str | Path | None = None) -> Path:
    """The plugin library a graph with vidtldr `ops` nodes needs, or an error that says what to do."""
    try:
        return resolve_plugin_library(plugin_library)
    except VidTLDRError as err:
        raise VidTLDRError(
            f"the graph holds {PLUGIN_DOMAIN} {'/'.join(ops)} nodes (--merge-impl plugin), which "
            f"need the vid-TLDR TensorRT plugins: {str(err).rstrip('.')}. Or export with --merge-impl onnx "
            "(standard ops only, no plugins)."
        ) from None


def check_engine_build(merge_impl: str, plugin_library: str | Path | None = None) -> None:
    """Fail before any export work when an engine cannot be built here (no TensorRT, no plugins)."""
    require_tensorrt()
    if merge_impl == "plugin":
        plugin_library_for(("Saliency", "Merge"), plugin_library)


def registered_plugin_ops(trt, ops) -> dict[str, bool]:
    """op -> whether a plugin creator (name, version "1", namespace "vidtldr") is registered."""
    registry = trt.get_plugin_registry()
    return {op: registry.get_creator(op, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None for op in ops}


def load_plugin_library(path: str | Path, ops=("Saliency", "Merge")) -> Path:
    """Load libvidtldr_plugins so its creators are in TensorRT's global plugin registry.

    dlopen (ctypes, RTLD_GLOBAL) first: the library's static registration (REGISTER_TENSORRT_PLUGIN)
    registers the creators. Only if that left them unregistered (a dynamic-only build) is the
    library handed to IPluginRegistry.load_library, which registers what its `getCreators` returns
    (calling both would register the creators twice, which load_library refuses).
    """
    path = Path(path)
    if not path.is_file():
        raise VidTLDRError(
            f"TensorRT plugin library {path} does not exist: build it with `vidtldr build-plugins` "
            "(needs CUDA and TensorRT), or pass --plugins with the path of libvidtldr_plugins.so"
        )
    trt = require_tensorrt()
    key = str(path.resolve())
    if key in _LOADED_LIBRARIES:
        return path
    try:
        ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
    except OSError as err:
        raise VidTLDRError(
            f"could not load the plugin library {path}: {err}. Rebuild it against this TensorRT "
            f"({trt.__version__}) and CUDA with `vidtldr build-plugins`"
        ) from err
    handle: Any = "ctypes"
    if not all(registered_plugin_ops(trt, ops).values()):
        try:
            handle = trt.get_plugin_registry().load_library(key)
        except Exception as err:  # noqa: BLE001 - the bindings raise RuntimeError/TypeError
            handle = None
            reason = f": {err}"
        else:
            reason = ""
        if handle is None:
            missing = [op for op, ok in registered_plugin_ops(trt, ops).items() if not ok]
            raise VidTLDRError(
                f"{path} loaded, but it registered no TensorRT plugin creator for "
                f"{', '.join(f'{PLUGIN_DOMAIN}::{op}' for op in missing)} (namespace "
                f"{PLUGIN_NAMESPACE!r}, version {PLUGIN_VERSION!r}){reason}. Rebuild it for this "
                f"TensorRT ({trt.__version__}) with `vidtldr build-plugins`"
            )
    _LOADED_LIBRARIES[key] = handle
    return path


# -------------------------------------------------------------------------------------------------
# Engine build
# -------------------------------------------------------------------------------------------------


_LOGGER = None  # one logger for the process: TensorRT keeps the first one as its global logger


def _logger(trt):
    """The process-wide TensorRT logger: keeps errors in `.messages` (for failure messages) and
    prints warnings when $VIDTLDR_TRT_VERBOSE is set (2: everything). It is never freed, because
    TensorRT holds on to the first logger it was given."""
    global _LOGGER
    if _LOGGER is None:

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[str] = []

            def log(self, severity, msg):
                verbose = os.environ.get("VIDTLDR_TRT_VERBOSE", "")
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.messages.append(str(msg))
                    if verbose:
                        print(f"[TensorRT] {msg}")
                elif verbose == "2" or (verbose and severity == trt.ILogger.Severity.WARNING):
                    print(f"[TensorRT] {msg}")

        _LOGGER = _Logger()
    _LOGGER.messages = []
    return _LOGGER


def _errors_tail(messages: list[str], limit: int = 8) -> str:
    if not messages:
        return ""
    shown = messages[-limit:]
    return "\nTensorRT said:\n" + "\n".join(f"  {m}" for m in shown)


def default_timing_cache(engine_path: str | Path) -> Path:
    """`engine.plan` -> `engine.timing.cache` beside it."""
    return Path(engine_path).with_suffix(".timing.cache")


def _vidtldr_nodes(model) -> list:
    return [n for n in model.graph.node if n.domain == PLUGIN_DOMAIN]


def _dtype_name(trt, dtype) -> str:
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
            for j, t in enumerate(outs):
                layer.set_output_type(j, trt.float32)
            pinned.append(layer.name)
    return pinned


def _io_specs(trt, network) -> tuple[dict, dict]:
    inputs = {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        inputs[t.name] = sc.io_spec(tuple(t.shape), _dtype_name(trt, t.dtype))
    outputs = {}
    for i in range(network.num_outputs):
        t = network.get_output(i)
        outputs[t.name] = sc.io_spec(tuple(t.shape), _dtype_name(trt, t.dtype))
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
        notes.append(f"timing cache {path} is from another GPU or TensorRT version: starting a new one")
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

    from vidtldr_deploy.export.onnx_export import read_metadata

    trt = require_tensorrt()
    log = log or (lambda _msg: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in PRECISIONS:
        raise VidTLDRError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not onnx_path.is_file():
        raise VidTLDRError(f"ONNX file {onnx_path} does not exist")
    if not engine_path.parent.is_dir():
        raise VidTLDRError(
            f"output directory {engine_path.parent} does not exist: create it or choose another -o path"
        )
    if workspace_mib is not None and workspace_mib <= 0:
        raise VidTLDRError(f"--workspace must be a positive number of MiB, got {workspace_mib}")
    try:
        model = onnx.load(str(onnx_path))
    except Exception as err:  # protobuf decode errors have no common base
        raise VidTLDRError(f"{onnx_path} is not a readable ONNX file: {err}") from err
    metadata = dict(metadata) if metadata is not None else read_metadata(model)
    onnx_sha256 = sc.sha256_file(onnx_path)
    strongly_typed_only = is_strongly_typed_only(trt)

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
            raise VidTLDRError(
                f"the graph holds {PLUGIN_DOMAIN}::{op} nodes, but no TensorRT plugin creator "
                f"{op!r} (namespace {PLUGIN_NAMESPACE!r}, version {PLUGIN_VERSION!r}) is registered "
                f"after loading {plugin_path}: rebuild the plugin library for this TensorRT "
                f"({trt.__version__}) with `vidtldr build-plugins`, or export with --merge-impl onnx"
            )
        plugin_sha256 = sc.sha256_file(plugin_path)
        # Without a local function of the same name the parser's only route is the plugin importer
        # (TensorRT < 10.7 prefers a model-local function over a registered plugin).
        kept = [f for f in model.functions if f.domain != PLUGIN_DOMAIN]
        del model.functions[:]
        model.functions.extend(kept)

    notes: list[str] = []
    logger = _logger(trt)
    messages = logger.messages
    builder = trt.Builder(logger)
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
        raise VidTLDRError(f"TensorRT's ONNX parser rejected {onnx_path}:\n{detail}{_errors_tail(messages)}")

    plugin_layers = [layer for layer in _layers(network) if layer.type == trt.LayerType.PLUGIN_V3]
    if nodes and len(plugin_layers) < len(nodes):
        raise VidTLDRError(
            f"{onnx_path} holds {len(nodes)} {PLUGIN_DOMAIN} nodes but the parsed network has only "
            f"{len(plugin_layers)} plugin layers: the plugin library {plugin_path} was not used"
        )

    config = builder.create_builder_config()
    pinned: list[str] = []
    graph_has_half = _network_has_half(trt, network)
    if precision == "fp16":
        if strongly_typed_only:
            if not graph_has_half:
                raise VidTLDRError(
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
        raise VidTLDRError(
            f"{onnx_path} carries fp16 tensors, and a strongly typed build keeps them: pass --precision fp16"
        )
    tf32 = precision != "fp32"
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: validated against PyTorch fp32
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)

    cache_path = Path(timing_cache) if timing_cache is not None else default_timing_cache(engine_path)
    _, cache_reused = _setup_timing_cache(trt, config, cache_path, notes)
    for note in notes:
        log(note)

    log(f"building the TensorRT {trt.__version__} engine ({precision}) from {onnx_path}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise VidTLDRError(f"TensorRT could not build an engine from {onnx_path}{_errors_tail(messages)}")
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


# -------------------------------------------------------------------------------------------------
# Runner
# -------------------------------------------------------------------------------------------------


def _torch_dtype(trt, torch, dtype):
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "int8": torch.int8, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
             "uint8": torch.uint8}  # fmt: skip
    name = _dtype_name(trt, dtype)
    if name not in table:
        raise VidTLDRError(f"engine I/O type {name} is not supported by the TensorRT runner")
    return table[name]


class TensorRTRunner:
    """Runs an engine built by `build_engine` after checking its sidecar against this machine.

    Device buffers are PyTorch CUDA tensors (static shapes: allocated once)."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, plugin_library: str | Path | None = None):
        trt = require_tensorrt()
        torch = _torch_cuda()
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise VidTLDRError(f"engine {self.engine_path} does not exist")
        self.sidecar = sc.read_sidecar(self.engine_path)

        runtime: dict[str, Any] = {
            "tensorrt_version": trt.__version__,
            "engine_sha256": sc.sha256_file(self.engine_path),
            **gpu_info(),
        }
        plugin_path: Path | None = None
        if self.sidecar.get("plugin_library_sha256"):
            candidate = plugin_library
            if candidate is None and not os.environ.get("VIDTLDR_PLUGIN_DIR"):
                recorded = self.sidecar.get("plugin_library")
                if recorded and Path(recorded).is_file():
                    candidate = recorded
            try:
                plugin_path = resolve_plugin_library(candidate)
            except VidTLDRError:
                if plugin_library is not None:
                    raise
                runtime["plugin_library"] = None
                runtime["plugin_library_sha256"] = None
            else:
                runtime["plugin_library"] = str(plugin_path)
                runtime["plugin_library_sha256"] = sc.sha256_file(plugin_path)
        sc.require_sidecar_match(self.sidecar, runtime, self.engine_path)
        if plugin_path is not None:
            load_plugin_library(plugin_path)

        self._logger = _logger(trt)
        messages = self._logger.messages
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise VidTLDRError(
                f"TensorRT {trt.__version__} could not load {self.engine_path}{_errors_tail(messages)}"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise VidTLDRError(f"could not create an execution context for {self.engine_path}{_errors_tail(messages)}")

        self._torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream(self.device)
        self.buffers: dict[str, Any] = {}
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise VidTLDRError(f"{self.engine_path}: tensor {name} has a dynamic shape {shape}; "
                                   "vidtldr engines are static")
            dtype = _torch_dtype(trt, torch, self.engine.get_tensor_dtype(name))
            buf = torch.empty(shape, dtype=dtype, device=self.device)
            self.buffers[name] = buf
            self.context.set_tensor_address(name, buf.data_ptr())
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_names.append(name)
            else:
                self.output_names.append(name)
        if len(self.input_names) != 1:
            raise VidTLDRError(f"{self.engine_path} has inputs {self.input_names}; expected one (video)")
        self.input_name = self.input_names[0]
        self.input_shape = tuple(self.buffers[self.input_name].shape)

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        if tuple(video.shape) != self.input_shape:
            raise VidTLDRError(
                f"input shape {tuple(video.shape)} does not match the engine's static input "
                f"{self.input_shape}"
            )
        dst = self.buffers[self.input_name]
        with torch.cuda.stream(self.stream):
            dst.copy_(torch.from_numpy(np.ascontiguousarray(video)).to(dst.dtype), non_blocking=False)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise VidTLDRError(f"TensorRT failed to run {self.engine_path}")
            outs = {name: self.buffers[name].float().cpu() for name in self.output_names}
        self.stream.synchronize()
        return {name: t.numpy() for name, t in outs.items()}

    def layer_times(self, iterations: int = 3) -> dict[str, float]:
        """Mean milliseconds per engine layer (TensorRT IProfiler) over `iterations` runs of the
        last input, in a separate execution context so timed runs stay unprofiled."""
        trt = require_tensorrt()

        class _Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)
                self.times: dict[str, float] = {}

            def report_layer_time(self, layer_name, ms):
                self.times[layer_name] = self.times.get(layer_name, 0.0) + float(ms)

        profiler = _Profiler()
        context = self.engine.create_execution_context()
        context.profiler = profiler
        for name, buf in self.buffers.items():
            context.set_tensor_address(name, buf.data_ptr())
        for _ in range(max(1, iterations)):
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise VidTLDRError(f"TensorRT failed to run {self.engine_path} under the profiler")
            self.stream.synchronize()
        times = {k: v / max(1, iterations) for k, v in profiler.times.items()}
        del context
        return times


# -------------------------------------------------------------------------------------------------
# The export command's engine step
# -------------------------------------------------------------------------------------------------


@dataclass
class EngineBuild:
    engine_path: Path
    sidecar_path: Path
    sidecar: dict
    validation: Any = None  # validate.ValidationResult, None with --no-validate
    notes: list[str] = field(default_factory=list)


def engine_report_path(report: str | Path | None) -> Path | None:
    """The engine's validation report beside the ONNX one: r.json -> r.tensorrt.json."""
    if report is None:
        return None
    report = Path(report)
    return report.with_name(f"{report.stem}.tensorrt{report.suffix or '.json'}")


def build_and_validate(
    onnx_path: str | Path,
    engine_path: str | Path,
    loaded=None,
    schedule=None,
    inputs: list[np.ndarray] | None = None,
    tolerances=None,
    precision: str = "fp32",
    workspace_mib: int | None = None,
    plugin_library: str | Path | None = None,
    timing_cache: str | Path | None = None,
    metadata: dict | None = None,
    inputs_label: str = "",
    strict_tokens: bool = False,
    log: Callable[[str], None] | None = None,
) -> EngineBuild:
    """Build the engine and its sidecar, then (given inputs) validate it against PyTorch.

    The ONNX graph is never touched; on failure the VidTLDRError says so."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        if log:
            log(msg)

    try:
        sidecar = build_engine(
            onnx_path, engine_path, precision=precision, workspace_mib=workspace_mib,
            plugin_library=plugin_library, timing_cache=timing_cache, metadata=metadata, log=note,
        )  # fmt: skip
    except VidTLDRError as err:
        raise VidTLDRError(f"{err}\nNo engine was written; the ONNX graph is kept at {onnx_path}.") from None
    result = EngineBuild(engine_path, sc.sidecar_path(engine_path), sidecar, notes=notes)
    if inputs:
        from vidtldr_deploy.validate import validate_runner

        runner = TensorRTRunner(engine_path, plugin_library=plugin_library)
        result.validation = validate_runner(
            runner, str(engine_path), loaded, schedule, inputs, tolerances,
            precision=precision, inputs_label=inputs_label, strict_tokens=strict_tokens,
        )  # fmt: skip
    return result
