"""Triton model configurations (config.pbtxt) as protobuf messages of Triton's own schema.

The schema is `inference.ModelConfig` from Triton's model_config.proto, which `tritonclient` ships
compiled (`tritonclient.grpc.model_config_pb2`): building the message instead of formatting text
means a field Triton does not know is an AttributeError here, not a load failure on the server.
Everything in this module is pure: tensor specs in, messages or text out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vidtldr_deploy.errors import EnvironmentProblem, InputError

PLATFORM_PLAN = "tensorrt_plan"
PLATFORM_ONNX = "onnxruntime_onnx"
PLATFORM_ENSEMBLE = "ensemble"
BACKEND_PYTHON = "python"
PARAM_PREFIX = "vidtldr."
BYTES_INPUT = "video_bytes"  # the encoded videos an ensemble takes (TYPE_STRING)

# Triton's only hard rule is that a model's name is the name of its folder in the repository (the
# config's `name` must match it), and every subfolder of the repository is loaded as a model. The
# name then travels in KServe v2 URLs (/v2/models/NAME/infer), perf_analyzer -m, metrics labels
# and shells, so this toolkit accepts only names that need no quoting or escaping anywhere:
# ASCII letters, digits, '_', '-', '.', starting with a letter, digit or '_' (no hidden folders,
# no '.'/'..'), at most 128 characters, and no purely numeric name (it reads as a version number).
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
NAME_RULE = (
    "a Triton model name is the name of its folder in the repository; this toolkit accepts ASCII "
    "letters, digits, '_', '-' and '.', starting with a letter, digit or '_', at most 128 "
    "characters, not only digits (it would read as a version), so it works unquoted in URLs "
    "(/v2/models/NAME), perf_analyzer -m NAME and shells"
)

# Triton's TYPE_* for the dtype names the sidecar records and for ONNX element types.
_SIDECAR_DTYPES = {
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
}  # fmt: skip
_ONNX_DTYPES = {
    "FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "BFLOAT16": "TYPE_BF16", "DOUBLE": "TYPE_FP64",
    "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
    "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64", "BOOL": "TYPE_BOOL", "STRING": "TYPE_STRING",
}  # fmt: skip


def model_config_pb2():
    """Triton's compiled model_config.proto; the `triton` extra brings it."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except ImportError as err:
        raise EnvironmentProblem(
            "Triton's model configuration schema comes with tritonclient: "
            "pip install 'vidtldr-deploy[triton]' (or pip install 'tritonclient[grpc,http]')"
        ) from err
    return pb2


def check_model_name(name: str) -> str:
    if not NAME_RE.match(name) or name.isdigit():
        raise InputError(f"model name {name!r} is not accepted: {NAME_RULE}; pass --name")
    return name


def name_from_stem(stem: str) -> str:
    """A file stem made into a model name: other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".-") or "model"
    return "m_" + name if name.isdigit() else name[:128]


def triton_dtype_from_sidecar(dtype: str) -> str:
    try:
        return _SIDECAR_DTYPES[str(dtype).lower()]
    except KeyError:
        raise InputError(f"engine tensor dtype {dtype!r} has no Triton data type") from None


def triton_dtype_from_onnx(elem_type_name: str) -> str:
    try:
        return _ONNX_DTYPES[elem_type_name]
    except KeyError:
        raise InputError(f"ONNX element type {elem_type_name} has no Triton data type") from None


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, Triton data type (TYPE_*), full shape (-1: dynamic)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Batching:
    """How Triton sees the first dimension (see docs/design.md "Triton and the static batch")."""

    max_batch_size: int  # 0: the model does not batch; dims are the full shapes, batch included
    max_queue_delay_us: int | None = None  # dynamic batching; only with max_batch_size > 0

    def dims(self, shape: tuple[int, ...]) -> list[int]:
        return list(shape[1:] if self.max_batch_size > 0 else shape)


def choose_batching(
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    max_batch_size: int,
    max_queue_delay_us: int | None,
    label: str,
) -> Batching:
    """Static first dims (every vidtldr export) -> max_batch_size 0 and no dynamic batching: the
    engine only takes exactly B, and a batcher would hand it 1..max_batch_size. Only a model whose
    inputs and outputs all start with a dynamic dim can be batched by Triton."""
    tensors = inputs + outputs
    dynamic_batch = bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)
    if not dynamic_batch:
        if max_queue_delay_us is not None:
            batch = inputs[0].shape[0] if inputs and inputs[0].shape else "?"
            raise InputError(
                f"{label}: --max-queue-delay-us needs a model that Triton can batch (a dynamic "
                f"first dimension), but this one has a static batch of {batch}: Triton serves it "
                "with max_batch_size 0 and no dynamic batcher. Serve concurrent requests with "
                "--instances, or export with the --batch your clients send"
            )
        return Batching(max_batch_size=0)
    if max_batch_size < 1:
        raise InputError(f"{label}: --max-batch-size must be >= 1 for a dynamic-batch graph")
    if max_queue_delay_us is not None and max_queue_delay_us < 0:
        raise InputError("--max-queue-delay-us must be >= 0")
    return Batching(max_batch_size=max_batch_size, max_queue_delay_us=max_queue_delay_us)


@dataclass(frozen=True)
class ModelSettings:
    """What the user chooses per repository (the rest comes from the graph or the sidecar)."""

    instances: int = 1
    kind: str = "KIND_GPU"  # KIND_GPU or KIND_CPU
    warmup: bool = True
    parameters: Mapping[str, str] = field(default_factory=dict)


def _add_tensors(container, specs: tuple[TensorSpec, ...], batching: Batching, pb2) -> None:
    for spec in specs:
        item = container.add()
        item.name = spec.name
        item.data_type = pb2.DataType.Value(spec.dtype)
        item.dims.extend(batching.dims(spec.shape))


def _warmup(pb2, inputs: tuple[TensorSpec, ...], batching: Batching):
    """One warmup request of the graph's own shape with random data (zeros would make every
    saliency score tie, a path real clips never take); None if some dim is dynamic."""
    warm = pb2.ModelWarmup(name="vidtldr_random_input", batch_size=1, count=1)
    for spec in inputs:
        dims = batching.dims(spec.shape)
        if any(d < 0 for d in dims) or spec.dtype == "TYPE_STRING":
            return None
        warm.inputs[spec.name].data_type = pb2.DataType.Value(spec.dtype)
        warm.inputs[spec.name].dims.extend(dims)
        warm.inputs[spec.name].random_data = True
    return warm


def _set_parameters(config, parameters: Mapping[str, str]) -> None:
    for key, value in sorted(parameters.items()):
        config.parameters[PARAM_PREFIX + key].string_value = str(value)


def model_config(
    name: str,
    platform: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    batching: Batching,
    settings: ModelSettings,
    default_model_filename: str,
):
    """config.pbtxt of one engine or graph."""
    pb2 = model_config_pb2()
    config = pb2.ModelConfig(
        name=name,
        platform=platform,
        max_batch_size=batching.max_batch_size,
        default_model_filename=default_model_filename,
    )
    _add_tensors(config.input, inputs, batching, pb2)
    _add_tensors(config.output, outputs, batching, pb2)
    config.instance_group.add(
        kind=pb2.ModelInstanceGroup.Kind.Value(settings.kind), count=settings.instances
    )
    _dynamic_batching(config, batching)  # batching is the reason to have a batch dim
    if settings.warmup:
        warm = _warmup(pb2, inputs, batching)
        if warm is not None:
            config.model_warmup.append(warm)
    _set_parameters(config, settings.parameters)
    return config


def _bytes_input(config, bytes_input: str, video: TensorSpec, batching: Batching, pb2) -> None:
    """One encoded clip per batch entry: [B] for a static batch, [1] per entry when batching."""
    dims = [1] if batching.max_batch_size > 0 else [video.shape[0]]
    config.input.add(name=bytes_input, data_type=pb2.DataType.Value("TYPE_STRING"), dims=dims)


def _dynamic_batching(config, batching: Batching) -> None:
    if batching.max_batch_size > 0:
        config.dynamic_batching.SetInParent()
        if batching.max_queue_delay_us is not None:
            config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us


def preprocess_config(
    name: str,
    bytes_input: str,
    video: TensorSpec,
    settings: ModelSettings,
    batching: Batching = Batching(0),
):
    """The Python-backend model that decodes encoded videos into the engine's input tensor: `B`
    per request for a static-batch engine, batched like the engine for a dynamic one."""
    pb2 = model_config_pb2()
    config = pb2.ModelConfig(
        name=name, backend=BACKEND_PYTHON, max_batch_size=batching.max_batch_size
    )
    _bytes_input(config, bytes_input, video, batching, pb2)
    config.output.add(
        name=video.name, data_type=pb2.DataType.Value(video.dtype), dims=batching.dims(video.shape)
    )
    # Decoding is CPU work whatever device the engine runs on.
    config.instance_group.add(
        kind=pb2.ModelInstanceGroup.Kind.Value("KIND_CPU"), count=settings.instances
    )
    _dynamic_batching(config, batching)
    _set_parameters(config, settings.parameters)
    return config


def ensemble_config(
    name: str,
    preprocess_name: str,
    engine_name: str,
    bytes_input: str,
    video: TensorSpec,
    outputs: tuple[TensorSpec, ...],
    batching: Batching = Batching(0),
):
    """bytes -> NAME_preprocess -> NAME; the ensemble's outputs are the engine's."""
    pb2 = model_config_pb2()
    config = pb2.ModelConfig(
        name=name, platform=PLATFORM_ENSEMBLE, max_batch_size=batching.max_batch_size
    )
    _bytes_input(config, bytes_input, video, batching, pb2)
    _add_tensors(config.output, outputs, batching, pb2)
    steps = config.ensemble_scheduling.step
    pre = steps.add(model_name=preprocess_name, model_version=-1)
    pre.input_map[bytes_input] = bytes_input
    pre.output_map[video.name] = "preprocessed_" + video.name
    run = steps.add(model_name=engine_name, model_version=-1)
    run.input_map[video.name] = "preprocessed_" + video.name
    for out in outputs:
        run.output_map[out.name] = out.name
    return config


def to_pbtxt(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_pbtxt(text: str):
    """config.pbtxt -> inference.ModelConfig (raises text_format.ParseError on a bad file)."""
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2().ModelConfig())


def config_parameters(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


def json_param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
