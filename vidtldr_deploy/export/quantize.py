"""Post-training INT8 quantization of an exported graph to explicit Q/DQ.

The graph keeps its fp32 computation and gains QuantizeLinear/DequantizeLinear pairs on the inputs
of the matrix products and convolutions that hold weights: the patch-embedding Conv and each
block's qkv, proj, fc1 and fc2. TensorRT (>= 11 strongly typed, or 10 with the INT8 flag) runs
exactly those layers in INT8; everything else stays floating point:
- the merge islands (vidtldr::Saliency / vidtldr::Merge, or their standard-op subgraphs) and the
  tensors entering and leaving them: merging picks tokens by argmax / top-k over cosine
  similarities, a discrete choice that INT8 rounding of its inputs would flip;
- attention's q k^T and P v: their inputs are the saliency island's inputs (q, k, and in the onnx
  form the softmax itself, which the exporter shares with the saliency), so quantizing them would
  quantize the island's inputs; and proportional attention's log(size) bias on the logits is not a
  pattern TensorRT's fused INT8 attention accepts;
- LayerNorm, Softmax, GELU and the residual adds;
- by default (QuantizeSettings.keep_fp32_near_merges), the weight layers summed straight into the
  hidden state that enters a merge island: the patch-embedding Conv, each merge layer's attention
  projection and the previous block's fc2. Their INT8 noise would land on the similarities the
  merge ranks and flip near-ties.

Tool: onnxruntime.quantization (static, QDQ, per-channel symmetric INT8 weights, symmetric INT8
activations, fp32 bias) with `nodes_to_quantize` naming the weight nodes; see docs/design.md, "INT8",
for why not ModelOpt. Calibration runs the graph in ONNX Runtime on CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from vidtldr_deploy.constants import META_PREFIX, Precision
from vidtldr_deploy.errors import InputError, RuntimeFailure
from vidtldr_deploy.export.merge_islands import (
    island_nodes,
    merge_island_violations,
    residual_feeders,
)
from vidtldr_deploy.export.metadata import description_from_metadata, read_metadata
from vidtldr_deploy.files import atomic_output

QUANT_PRECISIONS = ("int8",)
QUANT_OP_TYPES = ("MatMul", "Conv")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_RANDOM_CLIPS = 4
# Random calibration clips are drawn with the run's seed + this, so they never equal its validation
# or timing clips (drawn with the seed itself).
CALIBRATION_SEED_OFFSET = 1000
RANDOM_CLIPS_WARNING = (
    "no calibration clips given: calibrated on {count} seeded random clips, so the activation "
    "scales are meaningless for real video (they fit noise) and this INT8 graph's accuracy on real "
    "clips is unknown. Pass decoded clips of the graph's input shape as calibration data."
)


@dataclass(frozen=True)
class QuantizeSettings:
    precision: str = "int8"
    per_channel: bool = True
    calibration_method: str = "minmax"
    # TensorRT takes INT8 Q/DQ with zero point 0 only: activations symmetric, weights symmetric.
    symmetric_activations: bool = True
    # A float bias lets TensorRT fuse it into the INT8 GEMM epilogue; ORT's int32 bias does not
    # change the INT8 layers and costs a DequantizeLinear per layer.
    quantize_bias: bool = False
    random_clips: int = DEFAULT_RANDOM_CLIPS  # used only without calibration clips
    seed: int = 0
    # Leave in fp32 the weight layers whose outputs are summed straight into the hidden state that
    # enters a merge island (merge_islands.residual_feeders): the patch-embedding Conv before block
    # 0, each merge layer's attention projection, and the previous block's MLP fc2. The merge ranks
    # cosine similarities of that hidden state and takes the top r, a discrete choice: INT8
    # rounding noise added to the residual stream right there flips near-ties between candidate
    # pairs, while INT8 noise inside a branch (qkv, fc1) passes softmax or GELU and an fp32 GEMM
    # before it reaches the stream.
    # UMT-B, 4 frames, 300,100, random weights (benchmarks/bench_int8.py): merge-decision
    # agreement with fp32 96.9% -> 99.75% for 4 of 49 GEMMs in fp32; entropy, percentile or 16
    # calibration clips instead changed nothing (96.5-96.9%). The patch embedding (the whole
    # stream entering block 0) matters most: alone it gives 99.6%.
    keep_fp32_near_merges: bool = True

    def check(self) -> QuantizeSettings:
        if self.precision == "fp8":
            raise InputError(
                "--precision fp8 is not produced by this tool: ONNX Runtime's quantizer writes FP8 "
                "Q/DQ only at opset >= 19 (these graphs are opset 18) and its CPU calibration "
                "cannot check an FP8 engine's numerics. Use --precision int8, or quantize to FP8 "
                "with NVIDIA ModelOpt on a GPU of compute capability >= 8.9"
            )
        Precision.parse(self.precision, QUANT_PRECISIONS, "quantization precision")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise InputError(
                f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, "
                f"got {self.calibration_method!r}"
            )
        if self.random_clips < 1:
            raise InputError(f"random calibration clips must be >= 1, got {self.random_clips}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def record(self, calibration_source: str) -> dict:
        """The settings as reports and graph metadata record them: the random-clip count and seed
        only where the scales came from random clips, so a graph calibrated on real clips never
        reads as calibrated on random ones."""
        data = self.to_dict()
        if calibration_source != "random":
            del data["random_clips"], data["seed"]
        return data


@dataclass(frozen=True)
class Calibration:
    """What the scales were computed from: recorded in the graph's metadata and reports."""

    source: str  # "clips" or "random"
    count: int
    shape: tuple[int, ...]
    description: str
    sha256: str  # of all clips, in order (float32 bytes)
    clip_sha256: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "source": self.source, "count": self.count, "shape": list(self.shape),
            "description": self.description, "sha256": self.sha256,
            "clip_sha256": list(self.clip_sha256),
        }  # fmt: skip


@dataclass
class QuantizeResult:
    output: str
    precision: str
    merge_impl: str
    tool: str
    settings: QuantizeSettings
    calibration: Calibration
    quantized_nodes: list[str]
    island_nodes: int
    violations: list[str]
    warnings: list[str] = field(default_factory=list)
    functions_reattached: bool = False
    seconds: float = 0.0
    kept_fp32_nodes: list[str] = field(default_factory=list)  # weight nodes left fp32 on purpose

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return {
            "kind": "quantization",
            "output": self.output,
            "precision": self.precision,
            "merge_impl": self.merge_impl,
            "tool": self.tool,
            "settings": self.settings.record(self.calibration.source),
            "calibration": self.calibration.to_dict(),
            "quantized_nodes": list(self.quantized_nodes),
            "kept_fp32_nodes": list(self.kept_fp32_nodes),
            "island_nodes": self.island_nodes,
            "violations": list(self.violations),
            "warnings": list(self.warnings),
            "functions_reattached": self.functions_reattached,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
        }


# -------------------------------------------------------------------------------------------------
# Graph inspection


def static_input(model: onnx.ModelProto) -> tuple[str, tuple[int, ...]]:
    """The graph's single input and its static shape (exports are static-shape by contract)."""
    constants = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise InputError(f"expected one graph input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        raise InputError(f"graph input {inputs[0].name!r} has no static shape: export it again")
    return inputs[0].name, tuple(d.dim_value for d in dims)


def weight_nodes(model: onnx.ModelProto) -> list[str]:
    """MatMul / Conv nodes whose second operand is a stored weight, outside the merge islands.

    Attention's activation-by-activation products (q k^T, P v) and the islands' own MatMuls have
    no weight operand, so they are never selected."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    islands = {n.node for n in island_nodes(model)}
    return [
        n.name for n in model.graph.node
        if n.op_type in QUANT_OP_TYPES and len(n.input) > 1 and n.input[1] in constants
        and n.name not in islands
    ]  # fmt: skip


def nodes_to_quantize(
    model: onnx.ModelProto, settings: QuantizeSettings
) -> tuple[list[str], list[str]]:
    """(quantized, kept fp32): the weight nodes to quantize under `settings`, and the weight nodes
    left in fp32 because they feed a merge island's hidden state (keep_fp32_near_merges)."""
    nodes = weight_nodes(model)
    kept = residual_feeders(model, nodes) if settings.keep_fp32_near_merges else []
    return [n for n in nodes if n not in kept], kept


# -------------------------------------------------------------------------------------------------
# Calibration


def _sha256(arrays: Sequence[np.ndarray]) -> tuple[str, tuple[str, ...]]:
    total = hashlib.sha256()
    each = []
    for a in arrays:
        data = np.ascontiguousarray(a, dtype=np.float32).tobytes()
        total.update(data)
        each.append(hashlib.sha256(data).hexdigest())
    return total.hexdigest(), tuple(each)


def calibration_clips(
    shape: tuple[int, ...],
    clips: Sequence[np.ndarray] | None,
    description: str = "",
    random_count: int = DEFAULT_RANDOM_CLIPS,
    seed: int = 0,
) -> tuple[list[np.ndarray], Calibration, list[str]]:
    """The float32 clips to calibrate on, what they are, and warnings (random clips warn)."""
    notes: list[str] = []
    if clips is None or len(clips) == 0:
        rng = np.random.default_rng(seed)
        arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(random_count)]
        notes.append(RANDOM_CLIPS_WARNING.format(count=random_count))
        source = "random"
        description = description or f"{random_count} seeded random clips (seed {seed})"
    else:
        arrays = []
        for i, clip in enumerate(clips):
            clip = np.asarray(clip)
            if tuple(clip.shape) != tuple(shape):
                raise InputError(
                    f"calibration clip {i} has shape {tuple(clip.shape)}, but the graph takes "
                    f"{tuple(shape)}: decode clips at the exported frame count, size and batch"
                )
            arrays.append(np.ascontiguousarray(clip, dtype=np.float32))
        source = "clips"
        description = description or f"{len(arrays)} calibration clips"
    digest, each = _sha256(arrays)
    return arrays, Calibration(source, len(arrays), tuple(shape), description, digest, each), notes


def clip_reader(input_name: str, clips: Sequence[np.ndarray]):
    """An onnxruntime CalibrationDataReader over `clips` (one feed per clip); `.reads` counts."""
    from onnxruntime.quantization import CalibrationDataReader

    class ClipReader(CalibrationDataReader):
        def __init__(self):
            self.reads = 0
            self._clips = list(clips)

        def get_next(self):
            if self.reads >= len(self._clips):
                return None
            clip = self._clips[self.reads]
            self.reads += 1
            return {input_name: clip}

        def rewind(self):
            self.reads = 0

    return ClipReader()


# -------------------------------------------------------------------------------------------------
# Quantization


def ort_quantize_options(settings: QuantizeSettings, nodes: list[str]) -> dict:
    """Keyword arguments of onnxruntime.quantization.quantize_static (without paths and reader)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[settings.calibration_method]
    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": settings.per_channel,
        "activation_type": QuantType.QInt8,  # TensorRT: signed INT8 only
        "weight_type": QuantType.QInt8,
        "op_types_to_quantize": list(QUANT_OP_TYPES),
        "nodes_to_quantize": list(nodes),
        "calibrate_method": method,
        "extra_options": {
            "ActivationSymmetric": settings.symmetric_activations,
            "WeightSymmetric": True,
            "QuantizeBias": settings.quantize_bias,
            # Per output channel: axis 1 of a MatMul weight (K, N); Conv keeps axis 0.
            "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            # A weight-only MatMul pattern: never quantize an activation-by-activation product.
            "MatMulConstBOnly": True,
        },
    }


def _ort_quantize(src: Path, dst: Path, reader, settings: QuantizeSettings, nodes: list[str]):
    from onnxruntime.quantization import quantize_static

    root = logging.getLogger()
    level = root.level
    # ORT logs "consider pre-processing" on the root logger for every model; the exported graphs
    # are already shape-inferred and static.
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(src), str(dst), reader, **ort_quantize_options(settings, nodes))
    finally:
        root.setLevel(level)


def _with_metadata(
    model: onnx.ModelProto, source: onnx.ModelProto, extra: dict[str, str]
) -> onnx.ModelProto:
    """The source graph's metadata (restored if the quantizer dropped any) plus `extra`."""
    values = {p.key: p.value for p in source.metadata_props}
    values.update({p.key: p.value for p in model.metadata_props})
    values.update({META_PREFIX + k: v for k, v in extra.items()})
    del model.metadata_props[:]
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    return model


def _reattach_functions(model: onnx.ModelProto, source: onnx.ModelProto) -> bool:
    """Put back any local function the quantizer dropped (ORT has kept them so far; the plugin
    form cannot run anywhere but TensorRT without them). True if something was re-attached."""
    have = {(f.domain, f.name) for f in model.functions}
    missing = [f for f in source.functions if (f.domain, f.name) not in have]
    model.functions.extend(missing)
    domains = {o.domain for o in model.opset_import}
    for opset in source.opset_import:
        if opset.domain not in domains:
            model.opset_import.append(opset)
    return bool(missing)


def quantize_graph(
    onnx_path: str | Path,
    out_path: str | Path,
    clips: Sequence[np.ndarray] | None = None,
    clips_description: str = "",
    settings: QuantizeSettings | None = None,
    check_islands: bool = True,
) -> QuantizeResult:
    """Quantize the exported graph `onnx_path` to INT8 Q/DQ at `out_path` (written atomically).

    clips: float32 arrays of the graph's static input shape to calibrate on; None or empty
    calibrates on seeded random clips and records a warning. check_islands: refuse (and write
    nothing) if a Q/DQ ends up on a merge island's path; off only to study such graphs.
    """
    t0 = time.perf_counter()
    settings = (settings or QuantizeSettings()).check()
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    try:
        source = onnx.load(str(onnx_path))
    except FileNotFoundError as err:
        raise InputError(f"ONNX file {onnx_path} does not exist") from err
    described = description_from_metadata(read_metadata(source), onnx_path)
    if described.precision is not Precision.FP32:
        raise InputError(
            f"{onnx_path} is already {described.precision.value}: quantize the fp32 export"
        )
    input_name, shape = static_input(source)
    arrays, calibration, notes = calibration_clips(
        shape, clips, clips_description, settings.random_clips, settings.seed
    )
    nodes, kept = nodes_to_quantize(source, settings)
    if not nodes:
        raise InputError(f"{onnx_path} has no MatMul/Conv with weights to quantize")
    reader = clip_reader(input_name, arrays)
    with tempfile.TemporaryDirectory(prefix="vidtldr-int8-") as tmp:
        raw = Path(tmp) / "quantized.onnx"
        _ort_quantize(onnx_path, raw, reader, settings, nodes)
        model = onnx.load(str(raw))
    if reader.reads != len(arrays):
        raise RuntimeFailure(
            f"the calibrator read {reader.reads} of {len(arrays)} calibration clips"
        )
    reattached = _reattach_functions(model, source)
    violations = merge_island_violations(model)
    if violations and check_islands:
        raise RuntimeFailure(
            "quantization put Q/DQ on a merge island's path (the islands must stay fp32):\n  "
            + "\n  ".join(violations[:8])
        )
    import onnxruntime

    tool = f"onnxruntime.quantization {onnxruntime.__version__}"
    _with_metadata(model, source, {
        "precision": settings.precision,
        "quantization": json.dumps({
            "tool": tool, "format": "QDQ", "settings": settings.record(calibration.source),
            "op_types": list(QUANT_OP_TYPES), "nodes": len(nodes), "kept_fp32": kept,
        }),
        "calibration": json.dumps(calibration.to_dict()),
    })  # fmt: skip
    onnx.checker.check_model(model)
    with atomic_output(out_path, suffix=".onnx") as tmp_out:
        onnx.save(model, str(tmp_out))
    return QuantizeResult(
        output=str(out_path),
        precision=settings.precision,
        merge_impl=described.merge_impl,
        tool=tool,
        settings=settings,
        calibration=calibration,
        quantized_nodes=nodes,
        kept_fp32_nodes=kept,
        island_nodes=len(island_nodes(source)),
        violations=violations,
        warnings=notes,
        functions_reattached=reattached,
        seconds=time.perf_counter() - t0,
    )
