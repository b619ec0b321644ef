"""The PyTorch model an exported graph must reproduce, rebuilt from the graph's own metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.metadata import read_metadata
from vidtldr_deploy.models.source import DEMO_PREFIX, LoadedModel, load_source


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
    source = checkpoint or meta.get("checkpoint", "")
    if not source:
        raise VidTLDRError(f"pass --checkpoint: {onnx_path} was exported from a checkpoint file")
    if not checkpoint and not source.startswith(DEMO_PREFIX):
        if not Path(source).exists():
            raise VidTLDRError(f"pass --checkpoint: {source} (recorded at export) is not here")
    loaded = load_source(
        source, arch=meta["arch"], frames=int(meta["frames"]), ckpt_frames=ckpt_frames,
        unsafe_load=unsafe_load,
    )  # fmt: skip
    if meta.get("checkpoint_sha256") and loaded.sha256 != meta["checkpoint_sha256"]:
        raise VidTLDRError(
            f"checkpoint {loaded.label} (sha256 {loaded.sha256[:12]}) is not the one {onnx_path} "
            f"was exported from (sha256 {meta['checkpoint_sha256'][:12]}): pass the same checkpoint"
        )
    spec = json.loads(meta["schedule"])["spec"]
    schedule = loaded.schedule(spec)
    shape = tuple(json.loads(meta["input_shape"]))
    return GraphReference(loaded, schedule, shape, meta)
