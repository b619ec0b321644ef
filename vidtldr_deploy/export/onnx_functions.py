"""The `vidtldr` ONNX domain: Saliency and Merge as custom nodes with model-local function bodies.

TensorRT maps each node to the plugin of the same name (namespace/version from the node's
`plugin_namespace`/`plugin_version` attributes); every other runtime inlines the local function,
written here from standard ops with the same semantics as vidtldr_deploy.core (docs/design.md, "ONNX
contract"). The scatter-add is a one-hot MatMul, never ScatterElements with a reduction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import onnx
import onnxscript
from onnx.defs import OpSchema
from onnxscript import FLOAT
from onnxscript import opset18 as op

from vidtldr_deploy.constants import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION
from vidtldr_deploy.constants import DOMAIN_VERSION as VERSION
from vidtldr_deploy.export.metadata import DEFAULT_OPSET

VIDTLDR = onnxscript.values.Opset(DOMAIN, VERSION)


@onnxscript.script(VIDTLDR, default_opset=op)
def Saliency(q, k, scale: float) -> FLOAT:  # noqa: N802 (ONNX op names are CamelCase)
    """Foreground score (B, N) from q, k (B, H, N, D): head-mean attention row entropy, normalised."""
    zero = op.Constant(value_float=0.0)
    one = op.Constant(value_float=1.0)
    # The attribute-bound constant is cast: graph tools may give an attribute float any width.
    qs = op.Mul(op.Cast(q, to=1), op.Cast(op.Constant(value_float=scale), to=1))
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
    # Where broadcasts (B, 1) against (B, N): unlike Expand(Shape), shape inference keeps it static.
    return op.Where(constant, one, s)


@onnxscript.script(VIDTLDR, default_opset=op)
def Merge(x, size, score, r: int) -> tuple[FLOAT, FLOAT]:  # noqa: N802
    """x (B, N, C), size (B, N), score (B, N) -> x' (B, N - r, C), size' (B, N - r).

    Every shape here follows from the input shapes and `r` alone (no Shape/Expand/TopK-by-shape),
    so shape inference through this function keeps a static graph static.
    """
    zero = op.Constant(value_float=0.0)
    one = op.Constant(value_float=1.0)
    two = op.Constant(value_float=2.0)
    start0 = op.Constant(value_ints=[0])
    start1 = op.Constant(value_ints=[1])
    end = op.Constant(value_ints=[9223372036854775807])
    axis1 = op.Constant(value_ints=[1])
    axis2 = op.Constant(value_ints=[2])
    step2 = op.Constant(value_ints=[2])
    last = op.Constant(value_ints=[-1])
    int_one = op.Constant(value_int=1)
    int_zero = op.Constant(value_int=0)
    int_minus_one = op.Constant(value_int=-1)
    int_two = op.Constant(value_int=2)  # CumSum takes a scalar axis
    rr = op.Constant(value_int=r)
    xf = op.Cast(x, to=1)
    sizef = op.Cast(size, to=1)
    # Cosine similarity of even (a) to odd (b) tokens; a zero row stays zero.
    norm = op.ReduceL2(xf, last, keepdims=1)
    nonzero = op.Greater(norm, zero)
    unit = op.Where(nonzero, op.Div(xf, op.Where(nonzero, norm, one)), xf)
    ua = op.Slice(unit, start0, end, axis1, step2)
    ub = op.Slice(unit, start1, end, axis1, step2)
    sim = op.Div(op.Add(op.MatMul(ua, op.Transpose(ub, perm=[0, 2, 1])), one), two)
    best = op.ReduceMax(sim, axis2, keepdims=0)
    best_idx = op.ArgMax(sim, axis=2, keepdims=0)
    # Positions 0.. of a- and b-tokens, shaped by the tokens themselves (static under inference).
    iota_a = op.Sub(op.CumSum(op.Add(op.Mul(best_idx, int_zero), int_one), int_one), int_one)
    best_src = op.ArgMax(sim, axis=1, keepdims=0)
    iota_b = op.Sub(op.CumSum(op.Add(op.Mul(best_src, int_zero), int_one), int_one), int_one)
    # Rank in the stable descending order (lower index first among equals, as TopK and the
    # kernel do): how many a-tokens come before each one.
    b_i = op.Unsqueeze(best, axis2)
    b_j = op.Unsqueeze(best, axis1)
    earlier = op.Less(op.Unsqueeze(iota_a, axis1), op.Unsqueeze(iota_a, axis2))
    ahead = op.Or(op.Greater(b_j, b_i), op.And(op.Equal(b_j, b_i), earlier))
    rank = op.ReduceSum(op.Cast(ahead, to=7), axis2, keepdims=0)
    # sources[t] = the a-token of rank t, t < r (best match first).
    ranks = op.Range(int_zero, rr, int_one)
    is_rank = op.Cast(op.Equal(op.Unsqueeze(rank, axis1), op.Unsqueeze(ranks, last)), to=7)
    sources = op.ReduceSum(op.Mul(is_rank, op.Unsqueeze(iota_a, axis1)), axis2, keepdims=0)
    # unmerged[p] = the p-th kept a-token in original order. Its static length Na - r comes from
    # a valid Conv with r + 1 taps: no other standard op turns an attribute into a shorter dim.
    keep = op.GreaterOrEqual(rank, rr)
    slot = op.Where(keep, op.Sub(op.CumSum(op.Cast(keep, to=7), int_one), int_one), int_minus_one)
    taps = op.Reshape(
        op.Mul(op.Cast(op.Range(int_minus_one, rr, int_one), to=1), zero),
        op.Constant(value_ints=[1, 1, -1]),
    )
    # One padded column keeps the Conv output non-empty when every a-token merges (Na == r);
    # the Slice drops it again.
    pad_end = op.Constant(value_ints=[0, 0, 0, 0, 0, 1])
    padded = op.Pad(op.Unsqueeze(op.Cast(rank, to=1), axis1), pad_end)
    kept_slots = op.Slice(op.Conv(padded, taps), start1, end, axis2)
    kept_iota = op.Squeeze(op.Sub(op.CumSum(op.Add(kept_slots, one), int_two), one), axis1)
    is_slot = op.Equal(op.Unsqueeze(slot, axis1), op.Unsqueeze(op.Cast(kept_iota, to=7), last))
    unmerged = op.ReduceSum(
        op.Mul(op.Cast(is_slot, to=7), op.Unsqueeze(iota_a, axis1)), axis2, keepdims=0
    )
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
    one_hot = op.Cast(op.Equal(op.Unsqueeze(destinations, axis1), op.Unsqueeze(iota_b, last)), to=1)
    new_size_b = op.Add(size_b, op.Squeeze(op.MatMul(one_hot, op.Unsqueeze(weight, last)), last))
    # Row gathers with batch_dims=1: the output shape is the index shape, no Expand needed.
    src_rows = op.GatherND(xa, op.Unsqueeze(sources, last), batch_dims=1)
    kept_rows = op.GatherND(xa, op.Unsqueeze(unmerged, last), batch_dims=1)
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


@contextlib.contextmanager
def registered_schemas() -> Iterator[None]:
    """Make the exporter's tracer accept `vidtldr` nodes (it looks ops up by schema), for the trace
    only: a schema without an inference function left registered would hide the local functions
    from onnx's shape inference in this process, and every tensor after a merge would lose its
    shape."""
    added = []
    for schema in SCHEMAS:
        if not onnx.defs.has(schema.name, schema.domain):
            onnx.defs.register_schema(schema)
            added.append(schema)
    try:
        yield
    finally:
        for schema in added:
            onnx.defs.deregister_schema(schema.name, schema.since_version, schema.domain)


def _float32_constant(node: onnx.NodeProto) -> onnx.NodeProto:
    """`Constant(value_float=v)` -> `Constant(value=<float32 scalar>)`.

    onnx-graphsurgeon (Polygraphy sanitize, onnxslim) reads a float attribute as a Python float and
    writes it back as a float64 tensor, which ONNX Runtime then refuses next to float32 inputs.
    """
    for i, attr in enumerate(node.attribute):
        if node.op_type == "Constant" and attr.name == "value_float" and not attr.ref_attr_name:
            tensor = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [], [attr.f])
            node.attribute.pop(i)
            node.attribute.append(onnx.helper.make_attribute("value", tensor))
            break
    return node


def local_functions(opset: int = DEFAULT_OPSET) -> list[onnx.FunctionProto]:
    """The model-local function of each op, declaring the plugin attributes it ignores, importing
    the standard opset the model imports (a function importing another version of a domain than
    its model is refused by ONNX Runtime). The bodies use ops unchanged from 18 to MAX_OPSET."""
    protos = []
    for fn in (Saliency, Merge):
        proto = fn.to_function_proto()
        proto.attribute.extend(["plugin_namespace", "plugin_version"])
        for node in proto.node:
            _float32_constant(node)
        for imp in proto.opset_import:
            if imp.domain in ("", "ai.onnx"):
                imp.version = opset
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
    """torch custom op -> `vidtldr` node, for torch.onnx.export(custom_translation_table=...);
    trace inside `registered_schemas()`."""
    import torch

    from vidtldr_deploy.core import ops  # noqa: F401  (registers torch.ops.vidtldr.*)

    return {
        torch.ops.vidtldr.saliency.default: _saliency_node,
        torch.ops.vidtldr.merge.default: _merge_node,
    }
