"""PyTorch MergeViT -> static-shape ONNX (docs/design.md, "ONNX contract"), a thin wrapper over
torch.onnx.export (dynamo) plus the `vidtldr` local functions and the metadata every report reads."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from vidtldr_deploy.constants import INPUT_NAME, META_PREFIX, MergeImpl
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export import onnx_functions
from vidtldr_deploy.export.metadata import ExportSpec
from vidtldr_deploy.files import atomic_output
from vidtldr_deploy.models.vit import MergeViT

def _trace(model: MergeViT, dummy: torch.Tensor, spec: ExportSpec) -> onnx.ModelProto:
    table = onnx_functions.translation_table() if spec.impl is MergeImpl.CUSTOM else None
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
    impl = spec.impl
    if len(spec.schedule.layers) != model.cfg.depth:
        raise VidTLDRError("the schedule was resolved for another depth than this model's")
    side = model.cfg.img_size
    dummy = torch.randn(spec.batch, 3, spec.frames, side, side)
    with model.scheduled(spec.schedule.rs, impl):
        model.eval()
        try:
            proto = _trace(model, dummy, spec)
        except Exception as err:  # the exporter raises many types; the user needs the cause
            raise VidTLDRError(f"ONNX export failed: {str(err).splitlines()[0]}") from err
    if impl is MergeImpl.CUSTOM:
        proto.functions.extend(onnx_functions.local_functions())
    for key, value in spec.metadata(model).items():
        proto.metadata_props.add(key=META_PREFIX + key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_output(Path(out_path), suffix=".onnx") as tmp:
        onnx.save(proto, str(tmp))
    return proto
