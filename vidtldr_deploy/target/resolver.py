"""One way in: a path, an architecture name or `demo` becomes a typed Target exactly once.

Every check about the files happens here, before any runtime is imported: a checkpoint exists, a
graph's description is well formed, an engine has its sidecar and the graph it was built from
beside it (the same refusal, word for word, from every command), a graph's recorded checkpoint is
the one compared with. Commands then ask the Target for what they need: the PyTorch model (or the
reference an exported graph is compared with), its schedule and precision, and a runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from vidtldr_deploy.constants import Precision
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.export.metadata import (
    GraphDescription,
    describe_graph,
    description_from_metadata,
)
from vidtldr_deploy.export.reference import (
    GraphReference,
    check_recorded_checkpoint,
    reference_for_graph,
)
from vidtldr_deploy.models.registry import get_architecture
from vidtldr_deploy.models.source import LoadedModel, is_demo, load_source
from vidtldr_deploy.runtime.tensorrt import sidecar as sc

GRAPH_SUFFIX, ENGINE_SUFFIX, IR_SUFFIX = ".onnx", ".plan", ".xml"


class TargetKind(str, Enum):
    DEMO = "demo"
    ARCHITECTURE = "architecture"  # a registry name: sizes only, no weights
    CHECKPOINT = "checkpoint"  # a .pt/.pth/.bin/.safetensors file
    HF_FOLDER = "hf-folder"  # a Hugging Face save_pretrained folder
    GRAPH = "onnx"  # an exported graph
    ENGINE = "engine"  # a TensorRT .plan with its sidecar and graph beside it
    IR = "openvino-ir"  # an OpenVINO .xml (+ .bin) written by vidtldr export, metadata in rt_info

    @property
    def exported(self) -> bool:
        return self in (TargetKind.GRAPH, TargetKind.ENGINE, TargetKind.IR)


@dataclass(frozen=True)
class Target:
    text: str  # as the user gave it
    kind: TargetKind
    path: Path | None = None  # the file or folder; None for the demo and an architecture name
    graph: GraphDescription | None = None  # an exported graph's description (GRAPH, ENGINE)
    sidecar: dict | None = None  # the engine's sidecar, checked (ENGINE)

    @property
    def graph_path(self) -> Path | None:
        return None if self.graph is None else self.graph.path

    @property
    def precision(self) -> Precision:
        """What the target computes in: the engine's build, the graph's Q/DQ, else fp32."""
        if self.sidecar is not None:
            return Precision(self.sidecar["precision"])
        return self.graph.precision if self.graph is not None else Precision.FP32

    @property
    def default_runtime(self) -> str:
        return {TargetKind.ENGINE: "tensorrt", TargetKind.GRAPH: "onnxruntime",
                TargetKind.IR: "openvino"}.get(self.kind, "torch")  # fmt: skip

    def refuse_model_flags(self, **flags: object) -> None:
        """An exported graph fixes its schedule, architecture and frames: flags for them refused."""
        given = [name for name, value in flags.items() if value]
        if self.kind.exported and given:
            names = "/".join(f"--{n.replace('_', '-')}" for n in flags)
            raise InputError(
                f"{self.text} fixes its schedule, architecture and frames: {names} apply to "
                "checkpoints and 'demo'"
            )

    def reference(
        self, checkpoint: str | None = None, unsafe_load: bool = False, ckpt_frames=None
    ) -> GraphReference:
        """The PyTorch model and schedule an exported target is compared with."""
        if self.graph is None:
            raise InputError(f"{self.text} is a {self.kind.value}, not an exported graph")
        return reference_for_graph(self.graph, checkpoint, unsafe_load, ckpt_frames)

    def recorded_source(self, command: str) -> str:
        """The checkpoint an exported graph records, for a command that needs the model itself
        (tune searches schedules, so it cannot use the graph's): refused in one line if not here."""
        assert self.graph is not None
        try:
            return check_recorded_checkpoint(self.graph)
        except InputError:
            raise InputError(
                f"{command} needs the checkpoint: {self.text} fixes one schedule, and "
                f"{self.graph.checkpoint or 'no checkpoint'} (recorded at export) is not here; "
                f"pass the checkpoint itself as the target"
            ) from None

    def load(
        self, arch=None, frames=None, ckpt_frames=None, unsafe_load=False, seed=0
    ) -> LoadedModel:
        """The PyTorch model of a checkpoint, a folder or the demo (an exported graph: the model
        it records, at its frames)."""
        if self.kind is TargetKind.ARCHITECTURE:
            raise InputError(f"{self.text} is an architecture name: give a checkpoint or 'demo'")
        if self.graph is not None:
            return self.reference(unsafe_load=unsafe_load, ckpt_frames=ckpt_frames).loaded
        return load_source(self.text, arch, frames, ckpt_frames, unsafe_load, seed)

    def open_runner(
        self, runtime: str | None = None, device: str = "cpu", plugins=None, threads=None,
        merge_inputs: bool = False, precision: str = "fp32",
    ):  # fmt: skip
        """A runner for an exported target (imports its runtime only now; it activates on
        entering). merge_inputs: an ONNX Runtime runner also returns each merge's hidden input."""
        runtime = runtime or self.default_runtime
        if runtime == "openvino":
            from vidtldr_deploy.runtime.openvino import OpenVinoRunner

            return OpenVinoRunner(self.graph_path, device, precision, threads,
                                  merge_inputs=merge_inputs)  # fmt: skip
        if runtime == "tensorrt":
            from vidtldr_deploy.runtime.tensorrt.runner import TensorRTRunner

            return TensorRTRunner(self.path, plugin_library=plugins)
        from vidtldr_deploy.runtime.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(
            self.graph_path, device, threads=threads, merge_inputs=merge_inputs
        )


def resolve_target(text: str | Path, architectures: bool = False) -> Target:
    """What `text` names, checked: `architectures` lets a registry name through (sizes only)."""
    text = str(text)
    if is_demo(text):
        return Target(text, TargetKind.DEMO)
    path = Path(text)
    sc.refuse_sidecar(path)
    if not path.exists():
        if architectures and not path.suffix and len(path.parts) == 1:
            get_architecture(text)  # an unknown name is refused with the list of names
            return Target(text, TargetKind.ARCHITECTURE)
        raise InputError(f"{path} does not exist: give a checkpoint, a model folder or 'demo'")
    suffix = path.suffix.lower()
    if suffix == ENGINE_SUFFIX:
        return _engine(text, path)
    if suffix == GRAPH_SUFFIX:
        return Target(text, TargetKind.GRAPH, path, describe_graph(path))
    if suffix == IR_SUFFIX:
        from vidtldr_deploy.runtime.openvino import ir_metadata

        return Target(text, TargetKind.IR, path, description_from_metadata(ir_metadata(path), path))
    if path.is_dir():
        return Target(text, TargetKind.HF_FOLDER, path)
    return Target(text, TargetKind.CHECKPOINT, path)


def _engine(text: str, path: Path) -> Target:
    """An engine never travels alone: its sidecar, and the graph it was built from beside it (its
    metadata rebuilds the PyTorch reference, the schedule and the FLOPs)."""
    if not path.is_file():
        raise InputError(f"{path} is not an engine file")
    sidecar = sc.read_sidecar(path)
    graph = path.with_suffix(GRAPH_SUFFIX)
    if not graph.is_file():
        raise InputError(
            f"{path}: the graph it was built from ({graph}) is not beside it; its metadata "
            "rebuilds the PyTorch model, schedule and FLOPs the engine is compared with: put the "
            ".onnx the engine was built from beside it"
        )
    sc.require_graph_match(path, graph, sidecar)
    return Target(text, TargetKind.ENGINE, path, describe_graph(graph), sidecar)
