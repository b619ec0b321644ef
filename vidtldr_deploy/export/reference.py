"""The PyTorch model an exported graph must reproduce, rebuilt from the graph's own metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.export.metadata import GraphDescription, describe_graph
from vidtldr_deploy.models.source import LoadedModel, is_demo, is_random_demo, load_source


@dataclass
class GraphReference:
    """The PyTorch model and schedule an exported graph must reproduce, rebuilt from its metadata."""

    loaded: LoadedModel
    schedule: MergeSchedule
    input_shape: tuple[int, ...]
    metadata: dict[str, str]
    description: GraphDescription | None = None


def reference_for_graph(
    onnx_path: str | Path | GraphDescription,
    checkpoint: str | None = None,
    unsafe_load: bool = False,
    ckpt_frames: int | None = None,
) -> GraphReference:
    """Load the PyTorch model an exported graph (its path or its description) records."""
    desc = onnx_path if isinstance(onnx_path, GraphDescription) else describe_graph(onnx_path)
    source = check_recorded_checkpoint(desc, checkpoint, unsafe_load)
    expected = desc.checkpoint_sha256 or None
    loaded = load_source(
        source, arch=desc.arch, frames=desc.frames, ckpt_frames=ckpt_frames,
        unsafe_load=unsafe_load, expected_sha256=expected,
    )  # fmt: skip
    if expected and loaded.sha256 != expected:
        raise InputError(
            f"checkpoint {loaded.label} (sha256 {loaded.sha256[:12]}) is not the one {desc.path} "
            f"was exported from (sha256 {expected[:12]}): pass the same checkpoint"
        )
    loaded.check_memory(desc.batch)
    loaded.model.method = desc.method  # the PyTorch reference merges as the graph does
    schedule = loaded.schedule(desc.spec)
    return GraphReference(loaded, schedule, desc.input_shape, desc.metadata, desc)


def check_recorded_checkpoint(
    desc: GraphDescription, checkpoint: str | None = None, unsafe_load: bool = False
) -> str:
    """The checkpoint a graph is compared with (`--checkpoint`, else the one it records), checked
    against the graph's record before any file is read; returns it."""
    onnx_path, recorded = desc.path, desc.checkpoint
    source = checkpoint or recorded
    if not source:
        raise InputError(f"pass --checkpoint: {onnx_path} was exported from a checkpoint file")
    if unsafe_load and not checkpoint:
        # A graph is data anyone can edit: the file it names is never unpickled on its word alone.
        raise InputError(
            f"--unsafe-load unpickles a file, which runs its code: name that file yourself with "
            f"--checkpoint (the graph records {recorded or 'none'}); a file named only by a graph's "
            f"metadata is never unpickled"
        )
    demo_recorded = is_demo(recorded)
    if not checkpoint and not demo_recorded and not Path(source).exists():
        raise InputError(f"pass --checkpoint: {source} (recorded at export) is not here")
    if checkpoint and demo_recorded and checkpoint != recorded:
        raise InputError(
            f"{onnx_path} was exported from {recorded} (the built-in demo), not {checkpoint}: "
            f"leave --checkpoint out to validate it against the demo"
        )
    if not desc.checkpoint_sha256 and not is_random_demo(source):
        raise InputError(
            f"{onnx_path} records no checkpoint sha256 but {source} is a checkpoint file: the graph "
            f"was exported from the demo or its metadata was edited; re-export it"
        )
    return source
