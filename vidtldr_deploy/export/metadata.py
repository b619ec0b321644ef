"""What an exported graph says about itself: the `vidtldr.*` metadata_props written at export and
read back by validation, profiling, the engine build and serving (docs/design.md, "ONNX contract")."""

from __future__ import annotations

import json
from dataclasses import dataclass

import onnx

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import DOMAIN, META_PREFIX, MergeImpl, MergeMethod
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
        }


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The `vidtldr.*` metadata_props of an exported graph, without the prefix."""
    return {
        p.key.removeprefix(META_PREFIX): p.value
        for p in model.metadata_props
        if p.key.startswith(META_PREFIX)
    }


def require_local_functions(meta: dict[str, str], path: object) -> None:
    """Refuse, by name, a graph whose vidtldr nodes have no local functions to run them."""
    if meta.get("local_functions") == "false":
        form = meta.get("graph_form", "trt")
        raise GraphFormError(
            f"{path} was exported with --graph-form {form}: its vidtldr nodes have no local "
            "functions, so ONNX Runtime cannot run it (it is for TensorRT with the vidtldr "
            "plugin library). Validate the --graph-form portable export of the same model instead"
        )
