"""The vid-TLDR TensorRT plugin library: finding it, checking it can be used, loading it so its
creators are in TensorRT's plugin registry."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from vidtldr_deploy.constants import DOMAIN as PLUGIN_DOMAIN
from vidtldr_deploy.constants import MERGE_OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION
from vidtldr_deploy.errors import EnvironmentProblem, VidTLDRError
from vidtldr_deploy.runtime.tensorrt.environment import require_tensorrt

_LOADED_LIBRARIES: dict[str, Any] = {}  # resolved path -> TensorRT library handle (or "ctypes")


def resolve_plugin_library(path: str | Path | None = None) -> Path:
    """The plugin library to load: `path`, else $VIDTLDR_PLUGIN_DIR, else plugins/build."""
    from vidtldr_deploy.runtime.plugin_build import find_plugin_library

    if path is not None and not Path(path).exists():
        raise EnvironmentProblem(
            f"TensorRT plugin library {path} does not exist: build it with `vidtldr build-plugins` "
            "(needs CUDA and TensorRT), or pass --plugins with the path of libvidtldr_plugins.so"
        )
    return find_plugin_library(path)


def plugin_library_for(ops, plugin_library: str | Path | None = None) -> Path:
    """The plugin library a graph with vidtldr `ops` nodes needs, or an error that says what to do."""
    try:
        return resolve_plugin_library(plugin_library)
    except VidTLDRError as err:
        raise EnvironmentProblem(
            f"the graph holds {PLUGIN_DOMAIN} {'/'.join(ops)} nodes (--merge-impl plugin), which "
            f"need the vid-TLDR TensorRT plugins: {str(err).rstrip('.')}. Or export with --merge-impl onnx "
            "(standard ops only, no plugins)."
        ) from None


def check_engine_build(merge_impl: str, plugin_library: str | Path | None = None) -> Path | None:
    """Fail before any export work when an engine cannot be built here (no TensorRT, no plugins).
    Returns the plugin library a `plugin` graph needs, resolved once for the whole run: the build
    and the engine's validation are handed this path (None: the graph has no plugin nodes)."""
    require_tensorrt()
    if merge_impl == "plugin":
        return plugin_library_for(MERGE_OPS, plugin_library)
    return None


def registered_plugin_ops(trt, ops) -> dict[str, bool]:
    """op -> whether a plugin creator (name, version "1", namespace "vidtldr") is registered."""
    registry = trt.get_plugin_registry()
    return {
        op: registry.get_creator(op, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None for op in ops
    }


def load_plugin_library(path: str | Path, ops=MERGE_OPS) -> Path:
    """Load libvidtldr_plugins so its creators are in TensorRT's global plugin registry.

    dlopen (ctypes, RTLD_GLOBAL) first: the library's static registration (REGISTER_TENSORRT_PLUGIN)
    registers the creators. Only if that left them unregistered (a dynamic-only build) is the
    library handed to IPluginRegistry.load_library, which registers what its `getCreators` returns
    (calling both would register the creators twice, which load_library refuses).
    """
    path = Path(path)
    if not path.is_file():
        raise EnvironmentProblem(
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
        raise EnvironmentProblem(
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
            raise EnvironmentProblem(
                f"{path} loaded, but it registered no TensorRT plugin creator for "
                f"{', '.join(f'{PLUGIN_DOMAIN}::{op}' for op in missing)} (namespace "
                f"{PLUGIN_NAMESPACE!r}, version {PLUGIN_VERSION!r}){reason}. Rebuild it for this "
                f"TensorRT ({trt.__version__}) with `vidtldr build-plugins`"
            )
    _LOADED_LIBRARIES[key] = handle
    return path
