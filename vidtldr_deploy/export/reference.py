"""The PyTorch model an exported graph must reproduce, rebuilt from the graph's own metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from vidtldr_deploy.constants import EXPORT_MERGE_METHODS, MergeMethod
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError, VidTLDRError
from vidtldr_deploy.export.metadata import read_metadata
from vidtldr_deploy.models.source import LoadedModel, is_demo, is_random_demo, load_source


@dataclass
class GraphReference:
    """The PyTorch model and schedule an exported graph must reproduce, rebuilt from its metadata."""

    loaded: LoadedModel
    schedule: MergeSchedule
    input_shape: tuple[int, ...]
    metadata: dict[str, str]


def reference_for_graph(
    onnx_path: str | Path,
    checkpoint: str | None = None,
    unsafe_load: bool = False,
    ckpt_frames: int | None = None,
) -> GraphReference:
    """Read an exported graph's metadata and load the matching PyTorch model."""
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False)
    except FileNotFoundError as err:
        raise VidTLDRError(f"ONNX file {onnx_path} does not exist") from err
    except Exception as err:  # protobuf decode errors have no common base
        raise VidTLDRError(f"{onnx_path} is not a readable ONNX file: {err}") from err
    meta = read_metadata(graph)
    if "arch" not in meta:
        raise VidTLDRError(
            f"{onnx_path} carries no vidtldr metadata: validate graphs written by vidtldr-export"
        )
    frames, shape, spec = _recorded_geometry(meta, onnx_path)
    recorded = meta.get("checkpoint", "")
    source = checkpoint or recorded
    if not source:
        raise VidTLDRError(f"pass --checkpoint: {onnx_path} was exported from a checkpoint file")
    if unsafe_load and not checkpoint:
        # A graph is data anyone can edit: the file it names is never unpickled on its word alone.
        raise InputError(
            f"--unsafe-load unpickles a file, which runs its code: name that file yourself with "
            f"--checkpoint (the graph records {recorded or 'none'}); a file named only by a graph's "
            f"metadata is never unpickled"
        )
    demo_recorded = is_demo(recorded)
    if not checkpoint and not demo_recorded and not Path(source).exists():
        raise VidTLDRError(f"pass --checkpoint: {source} (recorded at export) is not here")
    if checkpoint and demo_recorded and checkpoint != recorded:
        raise InputError(
            f"{onnx_path} was exported from {recorded} (the built-in demo), not {checkpoint}: "
            f"leave --checkpoint out to validate it against the demo"
        )
    expected = meta.get("checkpoint_sha256") or None
    loaded = load_source(
        source, arch=meta["arch"], frames=frames, ckpt_frames=ckpt_frames,
        unsafe_load=unsafe_load, expected_sha256=expected,
    )  # fmt: skip
    if expected and loaded.sha256 != expected:
        raise VidTLDRError(
            f"checkpoint {loaded.label} (sha256 {loaded.sha256[:12]}) is not the one {onnx_path} "
            f"was exported from (sha256 {expected[:12]}): pass the same checkpoint"
        )
    if not expected and not is_random_demo(source):
        raise InputError(
            f"{onnx_path} records no checkpoint sha256 but {source} is a checkpoint file: the graph "
            f"was exported from the demo or its metadata was edited; re-export it"
        )
    loaded.check_memory(shape[0])
    loaded.model.method = _recorded_method(meta, onnx_path)
    schedule = loaded.schedule(spec)
    return GraphReference(loaded, schedule, shape, meta)


def _recorded_method(meta: dict[str, str], onnx_path) -> MergeMethod:
    """The graph's merge method; graphs from before methods were recorded are vid-TLDR."""
    value = meta.get("method", MergeMethod.VIDTLDR.value)
    if value not in EXPORT_MERGE_METHODS:
        raise _tampered(onnx_path, "method", value, f"one of {', '.join(EXPORT_MERGE_METHODS)}")
    return MergeMethod(value)


def _tampered(onnx_path, key: str, value: str, expected: str) -> InputError:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return InputError(
        f"{onnx_path}: metadata vidtldr.{key} = {shown!r} is not {expected}: the graph's metadata "
        f"was edited or damaged; re-export it with vidtldr export"
    )


def _recorded_geometry(meta: dict[str, str], onnx_path) -> tuple[int, tuple[int, ...], str]:
    """frames, input shape and schedule spec from the metadata, each checked: a graph is a file
    anyone can edit, and a tampered value must be a named error, not a crash."""
    raw = meta.get("frames", "")
    if not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise _tampered(onnx_path, "frames", raw, "a positive frame count")
    frames = int(raw)
    try:
        shape = json.loads(meta.get("input_shape", ""))
    except ValueError:
        shape = None
    if not (isinstance(shape, list) and len(shape) == 5
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):  # fmt: skip
        raise _tampered(onnx_path, "input_shape", meta.get("input_shape", ""), "[B, 3, T, H, W]")
    if shape[2] != frames:
        raise _tampered(onnx_path, "frames", raw, f"the input shape's {shape[2]} frames")
    text = meta.get("schedule", "")
    try:
        schedule = json.loads(text) if len(text) <= 1_000_000 else None
    except ValueError:
        schedule = None
    if not isinstance(schedule, dict) or not isinstance(schedule.get("spec"), str):
        raise _tampered(onnx_path, "schedule", text, 'JSON with a "spec" string')
    return frames, tuple(shape), schedule["spec"]
