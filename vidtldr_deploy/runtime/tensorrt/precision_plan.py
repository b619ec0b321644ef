"""The precision plan of an engine build (docs/design.md, "TensorRT"): which builder flags to set
and clear, and which layers stay fp32. Plain data in, plain data out: the layers arrive as
`LayerInfo` (name, kind, tensor names), so the plan is tested as data, without TensorRT; build.py
reads the parsed network into LayerInfo and applies the plan.

Which layers stay fp32, by precision:
- fp32: every layer (a strongly typed network of an fp32 graph), TF32 cleared.
- fp16 on TensorRT 10 (weakly typed, BuilderFlag.FP16 with OBEY_PRECISION_CONSTRAINTS): pinned to
  fp32 are the merge islands (the vidtldr Saliency/Merge plugin layers, the layers feeding them and
  the layers reading their outputs: a near-tie in the similarity decides which token merges) and
  the normalization layers (TensorRT's own advice: LayerNorm in fp16 can overflow after
  attention). Layers whose outputs are not floats (shapes, indices) are never pinned.
- fp16 on TensorRT 11 (always strongly typed): the graph carries the precision; an fp32 graph is
  refused with what to do instead.
- int8 / fp8 (explicit Q/DQ, runtime/tensorrt/quantized.py): the graph's Q/DQ placement decides.
  The merge islands and the weight layers feeding the hidden state that enters each island (the
  INT8 near-merge feeders, export/quantize.py) carry no Q/DQ, and without the FP16 flag a layer
  without Q/DQ runs fp32, so nothing is pinned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vidtldr_deploy.errors import InputError
from vidtldr_deploy.runtime.tensorrt.quantized import QuantizedBuildPlan

PLUGIN = "plugin"
NORMALIZATION = "normalization"
OTHER = "other"


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the parsed network, as the plan needs it."""

    name: str
    kind: str  # PLUGIN, NORMALIZATION or OTHER
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    float_outputs: bool  # every output is fp32/fp16 (a precision can be pinned)


@dataclass(frozen=True)
class TensorRTFeatures:
    """What the installed TensorRT offers, as far as the plan cares."""

    version: str
    strongly_typed_only: bool  # TensorRT 11: every network is strongly typed
    has_tf32_flag: bool = True


@dataclass(frozen=True)
class PrecisionPlan:
    precision: str
    strongly_typed: bool  # the network is (or is made) strongly typed
    builder_flags: tuple[str, ...]  # BuilderFlag names to set
    clear_flags: tuple[str, ...]  # BuilderFlag names to clear
    fp32_layers: tuple[str, ...] = ()  # layers pinned to fp32, in network order
    reasons: dict[str, str] = field(default_factory=dict)  # pinned layer -> why
    quantization: QuantizedBuildPlan | None = None
    notes: tuple[str, ...] = ()

    @property
    def tf32(self) -> bool:
        return "TF32" not in self.clear_flags


def strongly_typed_network(precision: str, features: TensorRTFeatures) -> bool:
    """Whether the network is built strongly typed; decided before parsing, since it is a flag of
    the network: always on TensorRT 11; on TensorRT 10 for fp32 only (fp16 pins by constraints, a
    Q/DQ graph builds weakly typed with the INT8 flag, so every unquantized layer stays fp32)."""
    return features.strongly_typed_only or precision == "fp32"


def merge_island_layers(layers: Sequence[LayerInfo]) -> dict[str, str]:
    """The merge islands' layers: each plugin layer, the layers producing its inputs and the
    layers reading its outputs (layer name -> reason)."""
    plugin_in = {t for layer in layers if layer.kind == PLUGIN for t in layer.inputs}
    plugin_out = {t for layer in layers if layer.kind == PLUGIN for t in layer.outputs}
    found: dict[str, str] = {}
    for layer in layers:
        if layer.kind == PLUGIN:
            found[layer.name] = "merge island"
        elif plugin_in & set(layer.outputs):
            found[layer.name] = "feeds a merge island"
        elif plugin_out & set(layer.inputs):
            found[layer.name] = "reads a merge island"
    return found


def plan_precision(
    precision: str,
    layers: Sequence[LayerInfo],
    features: TensorRTFeatures,
    graph_has_half: bool,
    quantization: QuantizedBuildPlan | None = None,
    graph: str = "the graph",
) -> PrecisionPlan:
    """The flags and fp32 layers of a `precision` build of a network with `layers` (see the module
    docstring); `quantization` is the Q/DQ plan of an int8/fp8 build (quantized_build_plan)."""
    strongly = strongly_typed_network(precision, features)
    tf32 = ("TF32",) if features.has_tf32_flag else ()
    if quantization is not None:
        return PrecisionPlan(
            precision, strongly, quantization.builder_flags, quantization.clear_flags,
            quantization=quantization, notes=tuple(quantization.notes),
        )  # fmt: skip
    if precision == "fp32":
        if graph_has_half:
            raise InputError(
                f"{graph} carries fp16 tensors, and a strongly typed build keeps them: pass "
                "--precision fp16"
            )
        # fp32 means fp32: validated against PyTorch fp32, so no TF32 rounding either
        return PrecisionPlan(precision, strongly, (), tf32)
    if precision != "fp16":
        raise InputError(f"no precision plan for {precision!r}")
    if features.strongly_typed_only:
        if not graph_has_half:
            raise InputError(
                f"TensorRT {features.version} networks are always strongly typed: the precision "
                f"comes from the ONNX graph, and {graph} is fp32. Build with --precision fp32, "
                "use TensorRT 10 for an fp16 engine from this graph, or convert the graph to mixed "
                "precision first (e.g. ModelOpt AutoCast, keeping the vidtldr Saliency/Merge "
                "nodes and their inputs in fp32)"
            )
        return PrecisionPlan(precision, strongly, (), ())
    reasons = merge_island_layers(layers)
    for layer in layers:
        if layer.kind == NORMALIZATION:
            reasons.setdefault(layer.name, "normalization")
    pinned = tuple(layer.name for layer in layers if layer.name in reasons and layer.float_outputs)
    return PrecisionPlan(
        precision, strongly, ("FP16", "OBEY_PRECISION_CONSTRAINTS"), (),
        fp32_layers=pinned, reasons={name: reasons[name] for name in pinned},
    )  # fmt: skip
