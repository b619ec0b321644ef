"""TensorRT build settings for quantized (explicit Q/DQ) graphs.

Pure selection logic on a `trt` module object, so it is testable without TensorRT (tests pass a
fake). backends/tensorrt.build_engine applies the result (see the patch in the issue-12 report):
- int8: the graph must carry INT8 Q/DQ (export, then export.quantize). TensorRT >= 11 networks are
  always strongly typed and take precision from the Q/DQ, so no flag is set. TensorRT 10: a weakly
  typed network with BuilderFlag.INT8 (required for explicit quantization there), and neither FP16
  nor the precision constraints: un-quantized layers, the merge islands and plugins among them,
  stay fp32 without any pinning. TF32 is cleared as for fp32: the merge islands' similarity
  MatMul must not round to TF32 (a near-tie decides which token merges).
- fp8: only on compute capability >= 8.9 (Ada, Hopper and later) and a TensorRT that has
  DataType.FP8; the graph must carry FP8 Q/DQ (this toolkit's quantizer does not write them).
  Otherwise refused with what to do instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from vidtldr_deploy.constants import Precision
from vidtldr_deploy.errors import EnvironmentProblem, InputError

QUANTIZED_PRECISIONS = tuple(p.value for p in Precision if p.quantized)
FP8_MIN_COMPUTE_CAPABILITY = (8, 9)
_QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class QuantizedBuildPlan:
    precision: str
    strongly_typed_network: bool  # set NetworkDefinitionCreationFlag.STRONGLY_TYPED (TRT 10)
    builder_flags: tuple[str, ...]  # BuilderFlag names to set
    clear_flags: tuple[str, ...]  # BuilderFlag names to clear
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["builder_flags"], d["clear_flags"] = list(self.builder_flags), list(self.clear_flags)
        return d


def graph_qdq_types(model: onnx.ModelProto) -> set[str]:
    """Element types the graph's QuantizeLinear nodes produce ("int8", "float8e4m3fn", ...),
    read from the zero point (or the output_dtype attribute when there is none)."""
    inits = {i.name: i for i in model.graph.initializer}
    const = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    found: set[str] = set()
    for n in model.graph.node:
        if n.op_type not in _QDQ:
            continue
        elem = None
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if n.op_type == "DequantizeLinear":
            src = inits.get(n.input[0])
            elem = src.data_type if src is not None else None
        if elem is None and zp in inits:
            elem = inits[zp].data_type
        if elem is None and zp in const:
            elem = const[zp].attribute[0].t.data_type
        if elem is None:
            out_dtype = [a.i for a in n.attribute if a.name == "output_dtype"]
            elem = out_dtype[0] if out_dtype else onnx.TensorProto.UINT8  # ONNX default
        found.add(
            onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem not in _FP8 else _FP8[elem]
        )
    return found


_FP8 = {
    onnx.TensorProto.FLOAT8E4M3FN: "float8e4m3fn",
    onnx.TensorProto.FLOAT8E5M2: "float8e5m2",
}


def _major(trt: Any) -> int:
    return int(str(getattr(trt, "__version__", "0")).split(".")[0])


def _cc(compute_capability: str | tuple[int, int] | None) -> tuple[int, int] | None:
    if compute_capability is None:
        return None
    if isinstance(compute_capability, tuple):
        return compute_capability
    major, _, minor = str(compute_capability).partition(".")
    return int(major), int(minor or 0)


def quantized_build_plan(
    trt: Any,
    precision: str,
    qdq_types: set[str],
    compute_capability: str | tuple[int, int] | None,
) -> QuantizedBuildPlan:
    """Network and builder flags for an engine of `precision` from a graph whose Q/DQ produce
    `qdq_types` (graph_qdq_types), on a GPU of `compute_capability` ("8.9" or (8, 9))."""
    Precision.parse(precision, QUANTIZED_PRECISIONS, "quantized precision")
    strongly_typed_only = _major(trt) >= 11 or not hasattr(trt.BuilderFlag, "FP16")
    version = getattr(trt, "__version__", "?")
    if precision == "fp8":
        cc = _cc(compute_capability)
        if cc is None or cc < FP8_MIN_COMPUTE_CAPABILITY:
            where = "an unknown GPU" if cc is None else f"compute capability {cc[0]}.{cc[1]}"
            raise InputError(
                f"--precision fp8 needs a GPU of compute capability >= 8.9 (Ada, Hopper or later); "
                f"this is {where}: use --precision int8"
            )
        if not hasattr(trt, "DataType") or not hasattr(trt.DataType, "FP8"):
            raise EnvironmentProblem(f"TensorRT {version} has no FP8 support: use --precision int8")
        if not any(t.startswith("float8") for t in qdq_types):
            raise InputError(
                "--precision fp8 needs a graph with FP8 Q/DQ (e.g. from NVIDIA ModelOpt, keeping "
                "the vidtldr Saliency/Merge islands fp32); this toolkit writes INT8 Q/DQ only"
            )
    elif "int8" not in qdq_types:
        raise InputError(
            "--precision int8 needs a graph with explicit INT8 Q/DQ: quantize the fp32 export "
            "first (vidtldr_deploy.export.quantize.quantize_graph)"
        )
    notes: list[str] = []
    clear = ("TF32",) if hasattr(trt.BuilderFlag, "TF32") else ()
    if strongly_typed_only:
        notes.append(f"TensorRT {version}: strongly typed network, precision from the graph's Q/DQ")
        return QuantizedBuildPlan(precision, False, (), clear, notes)
    flag = "INT8" if precision == "int8" else "FP8"
    if not hasattr(trt.BuilderFlag, flag):
        raise EnvironmentProblem(f"TensorRT {version} has no BuilderFlag.{flag}")
    notes.append(
        f"TensorRT {version}: weakly typed network with BuilderFlag.{flag} (explicit "
        "quantization); no FP16 flag, so layers without Q/DQ, merge islands included, run fp32"
    )
    return QuantizedBuildPlan(precision, False, (flag,), clear, notes)


def apply_build_plan(trt: Any, config: Any, plan: QuantizedBuildPlan) -> None:
    """Set and clear the plan's builder flags on a TensorRT IBuilderConfig."""
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))


def network_creation_flags(trt: Any, plan: QuantizedBuildPlan) -> int:
    flags = 0
    if plan.strongly_typed_network:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags
