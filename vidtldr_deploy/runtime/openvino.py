"""OpenVINO runner: an exported graph (.onnx, either merge form) or OpenVINO IR (.xml + .bin) on an
OpenVINO device (CPU, GPU, NPU, AUTO), f32 by default, bf16 / fp16 on request.

Precision. OpenVINO's CPU plugin defaults to bf16 wherever the CPU has bf16 units, which flips
merge decisions, so every compile sets INFERENCE_PRECISION_HINT explicitly (f32 unless asked).
Under bf16 / f16 the merge islands (export/merge_islands.py: saliency, merge) can carry
OpenVINO's per-node "keep the original precision" runtime attribute (`ov::DisablePrecisionConversion`,
the IR attribute `precise` version 0; once `disable_fp16_compression`). Python cannot construct that
attribute, so the graph is serialized to IR, the attribute written into the island layers' XML and
the IR read back: the deserializer builds the real attribute. The CPU plugin honours it for bf16 on
the islands' own operations (measured through the execution graph), not on weight GEMMs or fused
residual Adds; the GPU plugin's f16 conversion reads the same attribute (not measured here: no
Intel GPU). Whether it pays is measured, not assumed (docs/design.md, "Precision of the merge
islands"): `DEFAULT_KEEP_F32`.

Graph forms. The portable forms run as they are. `--merge-impl plugin` graphs have `vidtldr::`
nodes that OpenVINO has no conversion rule for; their model-local functions are inlined first
(onnx.inliner), so they run as the standard-op bodies. A plugin graph without local functions
(`--graph-form trt` / `trt-ep`) is refused by name.

`openvino` is imported inside functions only (an optional extra, `.[openvino]`).
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from vidtldr_deploy.constants import META_PREFIX
from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure, VidTLDRError
from vidtldr_deploy.runtime.base import Runner

# The toolkit's precision names -> OpenVINO's INFERENCE_PRECISION_HINT.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# What stays f32 under bf16 / f16: nothing, or the merge islands. (The weight layers and residual
# Adds feeding the islands' hidden state, which INT8 keeps fp32, cannot be kept: the CPU plugin
# ignores the attribute on them; measured, docs/design.md.)
KEEP_F32 = ("none", "islands")
# Measured (benchmarks/bench_openvino.py, README): on UMT-B agreement and pooled cosine are the same
# either way (87.0% / 0.99480 all-bf16, 86.75% / 0.99487 islands f32) and speed within noise; on
# the demo the f32 islands are worse (80% / 0.985 against 95% / 0.993). Hence all-bf16.
DEFAULT_KEEP_F32 = "none"
# The IR runtime attribute OpenVINO reads as "keep this node's precision" (ov::DisablePrecisionConversion).
KEEP_PRECISION_ATTRIBUTE = {"name": "precise", "version": "0"}
# The vidtldr graph metadata in the IR's rt_info: <rt_info><vidtldr><KEY value=.../></vidtldr>.
RT_INFO_SECTION = META_PREFIX.rstrip(".")
# Where an IR records the tensors entering its merge islands (merge-decision agreement reads them).
RT_INFO_MERGE_INPUTS = [f"{RT_INFO_SECTION}_islands", "merge_inputs"]
# The CPU plugin's switch for its low-precision transformations (LPT), which turn Q/DQ pairs into
# INT8 kernels. OpenVINO 2026.4's LPT miscomputes a merged Q/DQ graph (pooled cosine 0.49 against
# PyTorch on UMT-B, 4 frames, 300,100, while ONNX Runtime gives 0.9998; the unmerged Q/DQ graph
# matches ONNX Runtime), so a merged INT8 graph runs with them off: Q/DQ as fake quantization in f32.
LPT_PROPERTY = "LP_TRANSFORMS_MODE"
# Virtual devices that are never listed in available_devices but always take a compile.
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO")


def require_openvino():
    """The openvino module, or an EnvironmentProblem saying how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise EnvironmentProblem(
            "--runtime openvino needs the openvino package: pip install 'vidtldr-deploy[openvino]'"
        ) from err
    return openvino


def openvino_device(device: str | None) -> str:
    """The OpenVINO device name for `device` (CPU default; `cpu` is taken for CPU), refused by name
    with the devices present where this machine has no such device."""
    ov = require_openvino()
    name = "CPU" if device in (None, "", "cpu") else device.upper()
    available = list(ov.Core().available_devices)
    base = name.split(".")[0].split(":")[0]
    if base in VIRTUAL_DEVICES or name in available or base in {d.split(".")[0] for d in available}:
        return name
    raise EnvironmentProblem(
        f"--device {device}: OpenVINO has no {name} device here (available: "
        f"{', '.join(available + ['AUTO'])}); choose one of those"
    )


def check_precision(precision: str) -> str:
    if precision not in PRECISION_HINTS:
        raise InputError(
            f"--precision for --runtime openvino must be one of {', '.join(PRECISION_HINTS)} "
            f"(an INT8 Q/DQ graph runs as it is), got {precision!r}"
        )
    return PRECISION_HINTS[precision]


# -------------------------------------------------------------------------------------------------
# Graph -> OpenVINO model


def inline_merge_functions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """The graph with its `vidtldr` local functions inlined, and the names of the nodes that came
    from them (the merge islands of a plugin-form graph). A graph without vidtldr nodes comes back
    unchanged with no names."""
    from vidtldr_deploy.export.merge_islands import DOMAIN
    from vidtldr_deploy.export.metadata import GraphFormError

    if not any(n.domain == DOMAIN for n in model.graph.node):
        return model, set()
    if not any(f.domain == DOMAIN for f in model.functions):
        raise GraphFormError(
            "the graph's vidtldr nodes have no local functions (--graph-form trt / trt-ep), and "
            "OpenVINO has no vidtldr operations: export with --merge-impl onnx, or with the "
            "default --graph-form portable"
        )
    import onnx.inliner

    before = {n.name for n in model.graph.node}
    inlined = onnx.inliner.inline_local_functions(model)
    return inlined, {n.name for n in inlined.graph.node if n.name not in before}


def keep_f32_nodes(model: onnx.ModelProto, inlined_islands: set[str], keep_f32: str) -> set[str]:
    """Names of the graph nodes that stay f32 under a low-precision hint (see KEEP_F32)."""
    from vidtldr_deploy.export.merge_islands import island_nodes

    if keep_f32 not in KEEP_F32:
        raise InputError(f"keep_f32 must be one of {', '.join(KEEP_F32)}, got {keep_f32!r}")
    if keep_f32 == "none":
        return set()
    return set(inlined_islands) | {n.node for n in island_nodes(model)}


def mark_keep_precision(xml_path: Path, nodes: Iterable[str]) -> int:
    """Write the keep-precision attribute into the IR layers named `nodes`; how many were marked."""
    wanted = set(nodes)
    tree = ET.parse(xml_path)
    count = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in wanted:
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.SubElement(layer, "rt_info")
        if not any(a.get("name") == KEEP_PRECISION_ATTRIBUTE["name"] for a in rt.iter("attribute")):
            ET.SubElement(rt, "attribute", KEEP_PRECISION_ATTRIBUTE)
        count += 1
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return count


def graph_metadata(model: onnx.ModelProto) -> dict[str, str]:
    from vidtldr_deploy.export.metadata import read_metadata

    return read_metadata(model)


def write_ir(
    onnx_path: str | Path,
    xml_path: str | Path,
    keep_f32: str = DEFAULT_KEEP_F32,
) -> dict:
    """Convert an exported graph to OpenVINO IR at `xml_path` (+ `.bin`, f32 weights): plugin-form
    functions inlined, the nodes `keep_f32` names marked to keep their precision, the vidtldr graph
    metadata in the model's rt_info. Returns what it did, for reports."""
    from vidtldr_deploy.export.merge_islands import merge_hidden_inputs

    ov = require_openvino()
    model = onnx.load(str(onnx_path))
    meta = graph_metadata(model)
    flat, inlined = inline_merge_functions(model)
    keep = keep_f32_nodes(model, inlined, keep_f32)
    xml_path = Path(xml_path)
    with tempfile.TemporaryDirectory(prefix="vidtldr-ov-") as tmp:
        src = Path(tmp) / "graph.onnx"
        onnx.save(flat, str(src))
        try:
            ov_model = ov.convert_model(str(src))
        except Exception as err:  # the frontend raises its own types
            raise RuntimeFailure(
                f"OpenVINO could not convert {onnx_path}: {_first_line(err)}"
            ) from err
    for key, value in meta.items():
        ov_model.set_rt_info(value, [RT_INFO_SECTION, key])
    ov_model.set_rt_info(json.dumps(merge_hidden_inputs(model)), RT_INFO_MERGE_INPUTS)
    # Written beside the target and moved into place as a pair (.bin first): a failure leaves neither.
    with tempfile.TemporaryDirectory(prefix=f".{xml_path.name}.", dir=xml_path.parent) as out:
        tmp_xml = Path(out) / "model.xml"
        ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
        marked = mark_keep_precision(tmp_xml, keep)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    return {"keep_f32": keep_f32, "nodes_kept_f32": marked, "inlined_nodes": len(inlined)}


def ir_metadata(xml_path: str | Path) -> dict[str, str]:
    """The vidtldr graph metadata an IR carries in its rt_info (keys without the prefix)."""
    ov = require_openvino()
    model = ov.Core().read_model(str(xml_path))
    if not model.has_rt_info([RT_INFO_SECTION]):
        return {}
    section = model.get_rt_info([RT_INFO_SECTION])
    return {
        key: model.get_rt_info([RT_INFO_SECTION, key]).astype(str) for key in section.astype(dict)
    }


def merged_qdq(meta: dict[str, str]) -> bool:
    """Whether graph metadata describes an INT8 Q/DQ graph that merges tokens."""
    if meta.get("precision") != "int8":
        return False
    try:
        layers = json.loads(meta.get("schedule", "{}")).get("layers", [])
    except ValueError:
        return True  # unreadable: the safe side
    return any(int(row.get("r", 0)) > 0 for row in layers)


def merge_input_names(path: str | Path) -> list[str]:
    """The tensors entering the merge islands of an .onnx graph or an IR written by write_ir."""
    from vidtldr_deploy.export.merge_islands import merge_hidden_inputs

    if Path(path).suffix.lower() == ".onnx":
        return merge_hidden_inputs(onnx.load(str(path), load_external_data=False))
    model = require_openvino().Core().read_model(str(path))
    if not model.has_rt_info(RT_INFO_MERGE_INPUTS):
        raise InputError(f"{path} records no merge-island inputs: write IR with vidtldr-export")
    return json.loads(model.get_rt_info(RT_INFO_MERGE_INPUTS).astype(str))


def compile_torch_module(
    module, example, device: str | None = "CPU", precision: str = "fp32", threads: int | None = None
):
    """A PyTorch module converted by OpenVINO's PyTorch frontend at the example's static shapes and
    compiled: a callable running one inference request (the tuner's per-block timer). Nothing is
    merged inside a block timed this way, so there are no islands to keep f32."""
    ov = require_openvino()
    name = openvino_device(device)
    try:
        model = ov.convert_model(module, example_input=example)
        config = {"INFERENCE_PRECISION_HINT": check_precision(precision)}
        if threads is not None and name.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = ov.Core().compile_model(model, name, config)
    except VidTLDRError:
        raise
    except Exception as err:  # noqa: BLE001
        raise RuntimeFailure(
            f"OpenVINO could not convert the block to time: {_first_line(err)}"
        ) from err
    request = compiled.create_infer_request()
    inputs = [np.asarray(t.detach().numpy(), dtype=np.float32) for t in example]

    def run():
        return request.infer(inputs)

    run.threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))  # what the timing used
    return run


def _first_line(err: BaseException) -> str:
    lines = [
        ln.strip() for ln in str(err).splitlines() if ln.strip() and "Exception from" not in ln
    ]
    return lines[0] if lines else type(err).__name__


# -------------------------------------------------------------------------------------------------
# The runner


class OpenVinoRunner(Runner):
    """One compiled model on an OpenVINO device. `merge_inputs=True` also returns the hidden state
    entering each merge island (runtime/base.py), exposed from the graph as extra outputs."""

    name = "openvino"

    def __init__(
        self, path: str | Path, device: str | None = "CPU", precision: str = "fp32",
        threads: int | None = None, keep_f32: str = DEFAULT_KEEP_F32, merge_inputs: bool = False,
        low_precision_transforms: bool | None = None,
    ):  # fmt: skip
        self.path = Path(path)
        if self.path.suffix.lower() not in (".onnx", ".xml"):
            raise InputError(f"{path}: OpenVINO runs an .onnx graph or an .xml IR")
        self.hint = check_precision(precision)
        self.device_name, self.precision, self.threads = device, precision, threads
        self.keep_f32, self.merge_inputs = keep_f32, merge_inputs
        self.low_precision_transforms = low_precision_transforms
        self.conversion: dict = {}
        self.compiled = self.request = None

    def activate(self) -> None:
        from vidtldr_deploy.runtime.base import merge_input_name

        ov = require_openvino()
        self.device = openvino_device(self.device_name)
        extra = merge_input_names(self.path) if self.merge_inputs else []
        with tempfile.TemporaryDirectory(prefix="vidtldr-ov-") as tmp:
            xml = self.path
            if self.path.suffix.lower() == ".onnx":
                xml = Path(tmp) / "model.xml"
                self.conversion = write_ir(self.path, xml, self.keep_f32)
                meta = graph_metadata(onnx.load(str(self.path), load_external_data=False))
            else:
                meta = ir_metadata(self.path)
            if self.low_precision_transforms is None:
                self.low_precision_transforms = not merged_qdq(meta)
            config = {"INFERENCE_PRECISION_HINT": self.hint}
            if not self.low_precision_transforms:
                config[LPT_PROPERTY] = False
            if self.threads is not None and self.device.startswith("CPU"):
                config["INFERENCE_NUM_THREADS"] = int(self.threads)
            try:
                model = ov.Core().read_model(str(xml))
                graph_outputs = [o.get_any_name() for o in model.outputs]
                if extra:
                    model.add_outputs(extra)
                self.compiled = ov.Core().compile_model(model, self.device, config)
            except VidTLDRError:
                raise
            except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError for everything
                raise RuntimeFailure(
                    f"OpenVINO could not compile {self.path} for {self.device}: {_first_line(err)}"
                ) from err
        self.request = self.compiled.create_infer_request()
        self.input_shape = tuple(int(d) for d in self.compiled.inputs[0].get_shape())
        renamed = {t: merge_input_name(i) for i, t in enumerate(extra)}
        self._ports = []  # (output name, compiled port), graph outputs first
        for port in self.compiled.outputs:
            names = port.get_names()
            graph = next((n for n in graph_outputs if n in names), None)
            if graph is not None:
                self._ports.append((graph, port))
            for tensor, name in renamed.items():  # a graph output may also be a merge input
                if tensor in names:
                    self._ports.append((name, port))
        self.output_names = [name for name, _ in self._ports]

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        if self.request is None:
            raise self.inactive()
        if tuple(video.shape) != self.input_shape:
            raise InputError(
                f"input shape {tuple(video.shape)} does not match the graph's static input "
                f"{self.input_shape}"
            )
        try:
            result = self.request.infer([np.ascontiguousarray(video, dtype=np.float32)])
        except Exception as err:  # noqa: BLE001
            raise RuntimeFailure(
                f"OpenVINO failed running {self.path}: {_first_line(err)}"
            ) from err
        return {
            name: np.asarray(result[port], dtype=np.float32).copy() for name, port in self._ports
        }

    def timed_step(self, video: np.ndarray):
        if self.request is None:
            raise self.inactive()
        staged = np.ascontiguousarray(video, dtype=np.float32)
        return lambda: self.request.infer([staged])

    def runtime_precisions(self, nodes: Iterable[str]) -> dict[str, int]:
        """How many executed operations that hold any of `nodes` run at each precision (the
        compiled model's execution graph), to check what stayed f32."""
        wanted = set(nodes)
        counts: dict[str, int] = {}
        for op in self.compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            names = info["originalLayersNames"].astype(str).split(",")
            if wanted.intersection(names):
                prec = info["runtimePrecision"].astype(str)
                counts[prec] = counts.get(prec, 0) + 1
        return counts

    def close(self) -> None:
        self.request = None
        self.compiled = None
