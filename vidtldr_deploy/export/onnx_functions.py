"""The `vidtldr` ONNX domain: Saliency and Merge as custom nodes with model-local function bodies.

TensorRT maps each node to the plugin of the same name (namespace/version from the node's
`plugin_namespace`/`plugin_version` attributes); every other runtime inlines the local function,
written here from standard ops with the same semantics as vidtldr_deploy.core (docs/design.md, "ONNX
contract"). The scatter-add is a one-hot MatMul, never ScatterElements with a reduction.
"""

from __future__ import annotations

import onnx
import onnxscript
from onnx.defs import OpSchema
from onnxscript import FLOAT
from onnxscript import opset18 as op

from vidtldr_deploy.constants import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION
from vidtldr_deploy.constants import DOMAIN_VERSION as VERSION

VIDTLDR = onnxscript.values.Opset(DOMAIN, VERSION)


@onnxscript.script(VIDTLDR, default_opset=op)
def Saliency(q, k, scale: float) -> FLOAT:  # noqa: N802 (ONNX op names are CamelCase)
    """Foreground score (B, N) from q, k (B, H, N, D): head-mean attention row entropy, normalised."""
    zero = op.Constant(value_float=0.0)
    one = op.Constant(value_float=1.0)
    qs = op.Mul(op.Cast(q, to=1), op.Constant(value_float=scale))
    logits = op.MatMul(qs, op.Transpose(op.Cast(k, to=1), perm=[0, 1, 3, 2]))
    attn = op.ReduceMean(op.Softmax(logits, axis=-1), op.Constant(value_ints=[1]), keepdims=0)
    plogp = op.Where(op.Greater(attn, zero), op.Mul(attn, op.Log(attn)), zero)
    last = op.Constant(value_ints=[-1])
    e = op.ReduceSum(plogp, last, keepdims=0)
    s = op.Sub(e, op.ReduceMin(e, last, keepdims=1))
    span = op.ReduceMax(s, last, keepdims=1)
    constant = op.LessOrEqual(span, zero)
    s = op.Div(s, op.Where(constant, one, span))
    mean = op.ReduceMean(s, last, keepdims=1)
    background = op.Less(s, mean)
    s = op.Sub(s, mean)
    peak = op.ReduceMax(s, last, keepdims=1)
    s = op.Div(s, op.Where(op.Greater(peak, zero), peak, one))
    s = op.Where(background, zero, s)
    return op.Where(constant, op.Expand(one, op.Shape(s)), s)


@onnxscript.script(VIDTLDR, default_opset=op)
def Merge(x, size, score, r: int) -> tuple[FLOAT, FLOAT]:  # noqa: N802
    """x (B, N, C), size (B, N), score (B, N) -> x' (B, N - r, C), size' (B, N - r)."""
    zero = op.Constant(value_float=0.0)
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    start0 = op.Constant(value_ints=[0])
    start1 = op.Constant(value_ints=[1])
    end = op.Constant(value_ints=[9223372036854775807])
    axis1 = op.Constant(value_ints=[1])
    step2 = op.Constant(value_ints=[2])
    last = op.Constant(value_ints=[-1])
    xf = op.Cast(x, to=1)
    sizef = op.Cast(size, to=1)
    # Cosine similarity of even (a) to odd (b) tokens; a zero row stays zero.
    norm = op.ReduceL2(xf, last, keepdims=1)
    nonzero = op.Greater(norm, zero)
    unit = op.Where(nonzero, op.Div(xf, op.Where(nonzero, norm, one)), xf)
    ua = op.Slice(unit, start0, end, axis1, step2)
    ub = op.Slice(unit, start1, end, axis1, step2)
    sim = op.Div(op.Add(op.MatMul(ua, op.Transpose(ub, perm=[0, 2, 1])), one), two)
    best = op.ReduceMax(sim, last, keepdims=0)
    best_idx = op.ArgMax(sim, axis=-1, keepdims=0)
    # TopK keeps the lower index first among equal values: the stable descending order.
    best_sorted, order = op.TopK(best, op.Shape(best, start=1, end=2), axis=-1, largest=1)
    rr = op.Reshape(op.Constant(value_int=r), start1)
    sources = op.Slice(order, start0, rr, axis1)
    rest = op.Slice(order, rr, end, axis1)
    unmerged, rest_pos = op.TopK(rest, op.Shape(rest, start=1, end=2), axis=-1, largest=0)
    destinations = op.GatherElements(best_idx, sources, axis=1)
    xa = op.Slice(xf, start0, end, axis1, step2)
    xb = op.Slice(xf, start1, end, axis1, step2)
    size_a = op.Slice(sizef, start0, end, axis1, step2)
    size_b = op.Slice(sizef, start1, end, axis1, step2)
    score_a = op.Slice(op.Cast(score, to=1), start0, end, axis1, step2)
    weight = op.Mul(
        op.GatherElements(score_a, sources, axis=1), op.GatherElements(size_a, sources, axis=1)
    )
    # one_hot[b, j, i] = 1 where source i merges into destination j: the scatter-add as a MatMul.
    slots = op.Range(
        op.Constant(value_int=0), op.Squeeze(op.Shape(xb, start=1, end=2)), op.Constant(value_int=1)
    )
    one_hot = op.Cast(
        op.Equal(op.Unsqueeze(destinations, axis1), op.Unsqueeze(slots, last)), to=1
    )
    new_size_b = op.Add(size_b, op.Squeeze(op.MatMul(one_hot, op.Unsqueeze(weight, last)), last))
    channels = op.Shape(xa, start=2)
    src_rows = op.GatherElements(
        xa, op.Expand(op.Unsqueeze(sources, last), op.Concat(op.Shape(sources), channels, axis=0)), axis=1
    )
    kept_rows = op.GatherElements(
        xa, op.Expand(op.Unsqueeze(unmerged, last), op.Concat(op.Shape(unmerged), channels, axis=0)), axis=1
    )
    pulled = op.MatMul(one_hot, op.Mul(src_rows, op.Unsqueeze(weight, last)))
    new_xb = op.Div(
        op.Add(op.Mul(xb, op.Unsqueeze(size_b, last)), pulled), op.Unsqueeze(new_size_b, last)
    )
    x_out = op.CastLike(op.Concat(kept_rows, new_xb, axis=1), x)
    size_out = op.Concat(op.GatherElements(size_a, unmerged, axis=1), new_size_b, axis=1)
    return x_out, size_out


def _schema(name: str, inputs: list[str], outputs: list[str], attrs: dict) -> OpSchema:
    return OpSchema(
        name,
        DOMAIN,
        VERSION,
        inputs=[OpSchema.FormalParameter(n, "T") for n in inputs],
        outputs=[OpSchema.FormalParameter(n, "T") for n in outputs],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "float tensors")],
        attributes=[OpSchema.Attribute(n, t, "") for n, t in attrs.items()],
    )


_STR = OpSchema.AttrType.STRING
SCHEMAS = (
    _schema("Saliency", ["q", "k"], ["score"],
            {"scale": OpSchema.AttrType.FLOAT, "plugin_namespace": _STR, "plugin_version": _STR}),
    _schema("Merge", ["x", "size", "score"], ["x_out", "size_out"],
            {"r": OpSchema.AttrType.INT, "plugin_namespace": _STR, "plugin_version": _STR}),
)  # fmt: skip


def register_schemas() -> None:
    """Make the exporter's tracer accept `vidtldr` nodes (it looks ops up by schema)."""
    for schema in SCHEMAS:
        if not onnx.defs.has(schema.name, schema.domain):
            onnx.defs.register_schema(schema)


def local_functions() -> list[onnx.FunctionProto]:
    """The model-local function of each op, declaring the plugin attributes it ignores."""
    protos = []
    for fn in (Saliency, Merge):
        proto = fn.to_function_proto()
        proto.attribute.extend(["plugin_namespace", "plugin_version"])
        protos.append(proto)
    return protos


def _saliency_node(q, k, scale: float):
    return VIDTLDR.Saliency(
        q, k, scale=scale, plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION
    )


def _merge_node(x, size, score, r: int):
    return VIDTLDR.Merge(
        x, size, score, r=r, plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION
    )


def translation_table() -> dict:
    """torch custom op -> `vidtldr` node, for torch.onnx.export(custom_translation_table=...)."""
    import torch

    from vidtldr_deploy.core import ops  # noqa: F401  (registers torch.ops.vidtldr.*)

    register_schemas()
    return {
        torch.ops.vidtldr.saliency.default: _saliency_node,
        torch.ops.vidtldr.merge.default: _merge_node,
    }
