"""Names the whole toolkit shares, defined once: the ONNX domain and plugin identity, graph metadata,
merge implementations, precisions, runtimes and devices (docs/design.md, "ONNX contract")."""

from __future__ import annotations

from enum import Enum

from vidtldr_deploy.errors import InputError

# The vidtldr custom ops: ONNX domain and function-opset version, TensorRT plugin namespace and
# version. The exporter, the engine build and the C++ creators (plugins/src) must agree on them.
DOMAIN = "vidtldr"
DOMAIN_VERSION = 1
PLUGIN_NAMESPACE = "vidtldr"
PLUGIN_VERSION = "1"
MERGE_OPS = ("Saliency", "Merge")

# The exported graph: its one input and the prefix of its metadata_props.
INPUT_NAME = "video"
META_PREFIX = "vidtldr."


class Precision(str, Enum):
    """The numbers a graph or an engine computes in: one name each, checked in one place.

    INT8 is explicit Q/DQ with the merge islands kept fp32; FP8 is only built from a graph that
    already carries FP8 Q/DQ (NVIDIA ModelOpt), never written by this toolkit."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    FP8 = "fp8"

    def __str__(self) -> str:
        return self.value

    @property
    def quantized(self) -> bool:
        """Explicit quantization: the graph carries Q/DQ and the build follows it."""
        return self in (Precision.INT8, Precision.FP8)

    @classmethod
    def parse(
        cls,
        text: str | Precision,
        allowed: tuple[str, ...] | None = None,
        what: str = "--precision",
    ) -> Precision:
        """`text` as a Precision; `allowed` limits the names a caller takes (default PRECISIONS)."""
        allowed = allowed or PRECISIONS
        if isinstance(text, Precision) and text.value in allowed:
            return text
        if not isinstance(text, str) or text not in allowed:
            raise InputError(f"{what} must be one of {', '.join(allowed)}, got {text!r}")
        return cls(text)


# The built-in demo model's schedule when none is given: a quarter of the tokens in each of the
# first two layers.
DEMO_SCHEDULE = "0.25x2"

PRECISIONS = ("fp32", "fp16", "int8")  # what export, build and profile take
RUNTIMES = ("torch", "onnxruntime", "tensorrt", "openvino")
DEVICES = ("cpu", "cuda")  # openvino takes its own device names (CPU, GPU, NPU, AUTO)
# OpenVINO runs the transformer at these precisions (bf16 / fp16 on request; docs/design.md).
OPENVINO_PRECISIONS = ("fp32", "bf16", "fp16")


class MergeImpl(str, Enum):
    """How saliency and merge are computed: one concept with two spellings.

    STANDARD is the reference maths: plain PyTorch in the model, standard ONNX ops in the graph.
    CUSTOM is the `vidtldr` custom ops: torch.ops.vidtldr.* in the model (CUDA kernels on the GPU),
    `vidtldr::Saliency` / `vidtldr::Merge` nodes (TensorRT plugins) in the graph.
    """

    STANDARD = "onnx"
    CUSTOM = "plugin"

    @property
    def export_name(self) -> str:
        return self.value

    @property
    def model_name(self) -> str:
        return "reference" if self is MergeImpl.STANDARD else "custom_op"

    @classmethod
    def parse(cls, text: str | MergeImpl, allowed: tuple[str, ...] | None = None) -> MergeImpl:
        """`onnx`/`reference` -> STANDARD, `plugin`/`custom_op` -> CUSTOM; `allowed` limits the
        spellings a caller accepts (e.g. a command whose flag documents one vocabulary)."""
        if isinstance(text, MergeImpl):
            return text
        names = {"onnx": cls.STANDARD, "reference": cls.STANDARD,
                 "plugin": cls.CUSTOM, "custom_op": cls.CUSTOM}  # fmt: skip
        if text not in names or (allowed is not None and text not in allowed):
            choices = ", ".join(allowed or names)
            raise InputError(f"--merge-impl must be one of {choices}, got {text!r}")
        return names[text]


EXPORT_MERGE_IMPLS = tuple(m.export_name for m in MergeImpl)
MODEL_MERGE_IMPLS = tuple(m.model_name for m in MergeImpl)


class MergeMethod(str, Enum):
    """Which merge a schedule's steps apply (docs/design.md, "Merge methods").

    VIDTLDR: vid-TLDR, each source's mass scaled by its saliency (background sources dropped).
    TOME: ToMe, the same bipartite matching and size-weighted merge with no saliency (every score
    1) and no saliency step in the graph.
    RANDOM: an ablation baseline, random source/destination pairs merged by size; PyTorch only,
    never exported.
    """

    VIDTLDR = "vidtldr"
    TOME = "tome"
    RANDOM = "random"

    @classmethod
    def parse(cls, text: str | MergeMethod, allowed: tuple[str, ...] | None = None) -> MergeMethod:
        if isinstance(text, MergeMethod):
            return text
        names = allowed or tuple(m.value for m in cls)
        if text not in names:
            raise InputError(f"--method must be one of {', '.join(names)}, got {text!r}")
        return cls(text)


MERGE_METHODS = tuple(m.value for m in MergeMethod)
EXPORT_MERGE_METHODS = (MergeMethod.VIDTLDR.value, MergeMethod.TOME.value)
