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

from vidtldr_deploy.constants import DOMAIN, DOMAIN_VERSION, INPUT_NAME, META_PREFIX, MergeImpl
from vidtldr_deploy.errors import InputError, RuntimeFailure, plain_text
from vidtldr_deploy.export import onnx_functions
from vidtldr_deploy.export.metadata import (
    ExportSpec,
    check_graph_form,
    check_opset,
    has_local_functions,
    plugin_domain,
)
from vidtldr_deploy.files import atomic_output
from vidtldr_deploy.models.vit import MergeViT


def _trace(model: MergeViT, dummy: torch.Tensor, spec: ExportSpec) -> onnx.ModelProto:
    table = onnx_functions.translation_table() if spec.impl is MergeImpl.CUSTOM else None
    log = io.StringIO()
    # The exporter narrates every step on stdout and warns about unrelated torchvision ops.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    quiet = contextlib.redirect_stdout(log)
    with warnings.catch_warnings(), quiet, onnx_functions.registered_schemas():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (dummy,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(model.output_names),
            opset_version=spec.opset,
            custom_translation_table=table,
            dynamic_shapes=_dynamic_batch(spec),
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def _dynamic_batch(spec: ExportSpec) -> dict | None:
    """The batch dimension as 1..max_batch for a dynamic-batch export (everything else static)."""
    if spec.max_batch is None:
        return None
    return {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=spec.max_batch)}}


def _trace_batch(spec: ExportSpec) -> int:
    # A traced size of 1 would be specialised to a constant: trace a dynamic batch at 2.
    return spec.batch if spec.max_batch is None else 2


def export_onnx(model: MergeViT, spec: ExportSpec, out_path: str | Path) -> onnx.ModelProto:
    """Export `model` with `spec.schedule` to `out_path` (written atomically) and return the graph."""
    impl = spec.impl
    check_opset(spec.opset)
    check_graph_form(spec.graph_form, spec.merge_impl)
    if len(spec.schedule.layers) != model.cfg.depth:
        raise InputError("the schedule was resolved for another depth than this model's")
    side = model.cfg.img_size
    if spec.max_batch is not None and (spec.max_batch < 2 or spec.batch != spec.max_batch):
        raise InputError(f"a dynamic batch needs max_batch >= 2 and batch == max_batch: {spec}")
    dummy = torch.randn(_trace_batch(spec), 3, spec.frames, side, side)
    with model.scheduled(spec.schedule.rs, impl, spec.merge_method):
        model.eval()
        try:
            proto = _trace(model, dummy, spec)
        except Exception as err:  # the exporter raises many types; the user needs the cause
            if _interrupted(err):  # Ctrl-C inside the exporter is an interruption, not a failure
                raise KeyboardInterrupt from err
            raise RuntimeFailure(f"ONNX export failed: {_export_cause(err)}") from err
    if impl is MergeImpl.CUSTOM:
        apply_graph_form(proto, spec.graph_form, spec.opset)
    for key, value in spec.metadata(model).items():
        proto.metadata_props.add(key=META_PREFIX + key, value=value)
    # full_check runs strict shape inference, which needs every node's schema or local function.
    onnx.checker.check_model(proto, full_check=has_local_functions(spec.graph_form))
    with atomic_output(Path(out_path), suffix=".onnx") as tmp:
        onnx.save(proto, str(tmp))  # a full disk is a named InputError from atomic_output
    return proto


def apply_graph_form(proto: onnx.ModelProto, form: str, opset: int) -> onnx.ModelProto:
    """Give a plugin graph's vidtldr nodes the form asked for (export/metadata.py, GRAPH_FORMS):
    local functions beside them, none, or none with the nodes moved to the `trt.plugins` domain.
    The plugin_namespace/plugin_version attributes stay: they select the TensorRT creator."""
    if has_local_functions(form):
        proto.functions.extend(onnx_functions.local_functions(opset))
        return proto
    domain = plugin_domain(form)
    for node in proto.graph.node:
        if node.domain == DOMAIN:
            node.domain = domain
    if domain != DOMAIN:
        kept = [o for o in proto.opset_import if o.domain != DOMAIN]
        del proto.opset_import[:]
        proto.opset_import.extend(kept)
        proto.opset_import.append(onnx.helper.make_opsetid(domain, DOMAIN_VERSION))
    return proto


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _interrupted(err: BaseException) -> bool:
    return any(isinstance(e, KeyboardInterrupt) for e in _chain(err))


def _export_cause(err: BaseException, limit: int = 3) -> str:
    """The exporter's wrapper says only that it failed; the innermost error says why. Both, one
    line each, without the exporter's colour codes."""
    parts = []
    for e in (err, _chain(err)[-1]):
        lines = [ln.strip() for ln in plain_text(e).splitlines() if ln.strip()]
        text = f"{type(e).__name__}: {' '.join(lines[:limit])}" if lines else type(e).__name__
        if text not in parts:
            parts.append(text)
    return "; caused by ".join(parts)
