"""PyTorch MergeViT -> static-shape ONNX (DESIGN.md, "ONNX contract"), a thin wrapper over
torch.onnx.export (dynamo) plus the `vidtldr` local functions and the metadata every report reads."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from vidtldr_deploy import __version__
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export import onnx_functions
from vidtldr_deploy.files import atomic_output
from vidtldr_deploy.models.vit import MergeViT

MERGE_IMPLS = ("onnx", "plugin")
DEFAULT_OPSET = 18
INPUT_NAME = "video"
META_PREFIX = "vidtldr."


@dataclass(frozen=True)
class ExportSpec:
    """What a graph was exported as: everything needed to rebuild its PyTorch reference."""

    arch: str
    frames: int
    batch: int
    schedule: MergeSchedule
    merge_impl: str = "onnx"
    opset: int = DEFAULT_OPSET
    checkpoint_sha256: str = ""
    checkpoint: str = ""

    def metadata(self, model: MergeViT) -> dict[str, str]:
        side = model.cfg.img_size
        return {
            "version": __version__,
            "arch": self.arch,
            "frames": str(self.frames),
            "batch": str(self.batch),
            "input_shape": json.dumps([self.batch, 3, self.frames, side, side]),
            "outputs": json.dumps(list(model.output_names)),
            "merge_impl": self.merge_impl,
            "schedule": json.dumps(self.schedule.to_dict()),
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint": self.checkpoint,
        }


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The `vidtldr.*` metadata_props of an exported graph, without the prefix."""
    return {
        p.key.removeprefix(META_PREFIX): p.value
        for p in model.metadata_props
        if p.key.startswith(META_PREFIX)
    }


def _trace(model: MergeViT, dummy: torch.Tensor, spec: ExportSpec) -> onnx.ModelProto:
    table = onnx_functions.translation_table() if spec.merge_impl == "plugin" else None
    log = io.StringIO()
    # The exporter narrates every step on stdout and warns about unrelated torchvision ops.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(log):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (dummy,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(model.output_names),
            opset_version=spec.opset,
            custom_translation_table=table,
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def export_onnx(model: MergeViT, spec: ExportSpec, out_path: str | Path) -> onnx.ModelProto:
    """Export `model` with `spec.schedule` to `out_path` (written atomically) and return the graph."""
    if spec.merge_impl not in MERGE_IMPLS:
        raise VidTLDRError(f"--merge-impl must be one of {MERGE_IMPLS}, got {spec.merge_impl!r}")
    if len(spec.schedule.layers) != model.cfg.depth:
        raise VidTLDRError("the schedule was resolved for another depth than this model's")
    impl = "custom_op" if spec.merge_impl == "plugin" else "reference"
    model.set_schedule(spec.schedule.rs, impl).eval()
    side = model.cfg.img_size
    dummy = torch.randn(spec.batch, 3, spec.frames, side, side)
    try:
        proto = _trace(model, dummy, spec)
    except Exception as err:  # the exporter raises many types; the user needs the cause
        raise VidTLDRError(f"ONNX export failed: {str(err).splitlines()[0]}") from err
    finally:
        model.set_schedule(model.rs, "reference")
    if spec.merge_impl == "plugin":
        proto.functions.extend(onnx_functions.local_functions())
    for key, value in spec.metadata(model).items():
        proto.metadata_props.add(key=META_PREFIX + key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_output(Path(out_path), suffix=".onnx") as tmp:
        onnx.save(proto, str(tmp))
    return proto
