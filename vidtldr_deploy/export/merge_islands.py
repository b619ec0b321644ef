"""Merge islands in an exported graph: the nodes that compute vid-TLDR's saliency and merge.

Both export forms mark them. `--merge-impl plugin`: `vidtldr::Saliency` / `vidtldr::Merge` nodes
(with their model-local function bodies). `--merge-impl onnx`: standard-op subgraphs whose nodes
torch.onnx tagged with the module they came from (`pkg.torch.onnx.class_hierarchy` names the
SaliencyStep / MergeStep classes, `pkg.torch.onnx.name_scopes` the `blocks.N.saliency` /
`blocks.N.merge` module path). Quantization must leave them, and the tensors entering and leaving
them, in floating point: the merge is a discrete choice (argmax / top-k over cosine similarities)
that INT8 rounding of its inputs would change.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

import onnx

from vidtldr_deploy.errors import RuntimeFailure

DOMAIN = "vidtldr"  # = export.onnx_functions.DOMAIN (not imported: keeps onnxscript out of here)
ISLAND_OPS = ("Saliency", "Merge")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops that move or reshape data without arithmetic. TensorRT propagates Q/DQ across them (and so
# may ORT's graph optimiser), so a Q/DQ behind one of them still quantizes the island's tensor.
TRANSPARENT_OPS = frozenset({
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Gather", "GatherElements", "Flatten",
    "Identity", "Expand", "Concat", "Split", "Cast", "Tile", "Pad",
})  # fmt: skip
_CLASS_PARTS = {"SaliencyStep": "saliency", "MergeStep": "merge"}
_SCOPE = re.compile(r"^(?P<block>.*?)\.?(?P<part>saliency|merge)$")


@dataclass(frozen=True)
class IslandNode:
    node: str  # the graph node's name
    island: str  # e.g. "blocks.1.merge" (onnx form) or "vidtldr::Merge node_merge_1" (plugin form)
    part: str  # "saliency" or "merge"

    def to_dict(self) -> dict:
        return {"node": self.node, "island": self.island, "part": self.part}


def _meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def _scopes(value: str) -> list[str]:
    """torch.onnx writes the scope list as a Python literal; tolerate anything else."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return []
    return [str(s) for s in parsed] if isinstance(parsed, (list, tuple)) else []


def _standard_op_island(node: onnx.NodeProto) -> tuple[str, str] | None:
    """(island, part) for a node exported from a SaliencyStep / MergeStep module, else None."""
    meta = _meta(node)
    hierarchy = meta.get("pkg.torch.onnx.class_hierarchy", "")
    part = next((p for cls, p in _CLASS_PARTS.items() if f".{cls}'" in hierarchy), None)
    scope = next(
        (s for s in reversed(_scopes(meta.get("pkg.torch.onnx.name_scopes", "")))
         if _SCOPE.match(s)),
        None,
    )  # fmt: skip
    if part is None and scope is not None:
        part = _SCOPE.match(scope).group("part")  # type: ignore[union-attr]
    if part is None:
        return None
    return scope or part, part


def island_nodes(model: onnx.ModelProto) -> list[IslandNode]:
    """Every top-level node that belongs to a merge island, in graph order."""
    found = []
    for i, node in enumerate(model.graph.node):
        name = node.name or f"#{i}"
        if node.domain == DOMAIN and node.op_type in ISLAND_OPS:
            found.append(IslandNode(name, f"{DOMAIN}::{node.op_type} {name}", node.op_type.lower()))
            continue
        hit = _standard_op_island(node)
        if hit is not None:
            found.append(IslandNode(name, *hit))
    return found


def island_boundary(
    model: onnx.ModelProto, islands: Iterable[IslandNode] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(inputs, outputs): tensor name -> island for the tensors that cross an island's border.

    Initializers and tensors produced and consumed within the same island are not boundaries."""
    members = {n.node: n.island for n in (island_nodes(model) if islands is None else islands)}
    constants = {i.name for i in model.graph.initializer}
    producer_island: dict[str, str] = {}
    for i, node in enumerate(model.graph.node):
        island = members.get(node.name or f"#{i}")
        if island is not None:
            producer_island.update({t: island for t in node.output if t})
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for i, node in enumerate(model.graph.node):
        island = members.get(node.name or f"#{i}")
        if island is None:
            continue
        for t in node.input:
            if t and t not in constants and producer_island.get(t) != island:
                inputs[t] = island
    graph_outputs = {o.name for o in model.graph.output}
    for i, node in enumerate(model.graph.node):
        island = members.get(node.name or f"#{i}")
        for t in node.input:
            owner = producer_island.get(t)
            if owner is not None and owner != island:
                outputs[t] = owner
    for t in graph_outputs:
        if t in producer_island:
            outputs[t] = producer_island[t]
    return inputs, outputs


def _data_inputs(node: onnx.NodeProto) -> Iterable[str]:
    # Shape/index operands of Reshape, Slice, Gather, ... are not the data being moved.
    return node.input if node.op_type == "Concat" else node.input[:1]


def merge_island_violations(
    model: onnx.ModelProto, islands: Iterable[IslandNode] | None = None
) -> list[str]:
    """Where a QuantizeLinear / DequantizeLinear sits in, on a path into, or on a path out of a
    merge island (paths followed through data-movement ops only). Empty: the islands are fp32.

    islands: the island nodes, found in the fp32 source graph, for a graph whose tool dropped the
    node metadata that marks the onnx form's islands (node names survive quantization)."""
    nodes = list(model.graph.node)
    found_islands = list(islands) if islands is not None else island_nodes(model)
    members = {n.node: n.island for n in found_islands}
    producer = {t: n for n in nodes for t in n.output if t}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    found: list[str] = []

    def label(n: onnx.NodeProto) -> str:
        return f"{n.op_type} {n.name or n.output[0]!r}"

    for i, n in enumerate(nodes):
        if n.op_type in QDQ_OPS and (n.name or f"#{i}") in members:
            found.append(f"{label(n)} inside {members[n.name or f'#{i}']}")
    for fn in model.functions:
        if fn.domain == DOMAIN:
            for n in fn.node:
                if n.op_type in QDQ_OPS:
                    found.append(f"{n.op_type} inside the local function {DOMAIN}::{fn.name}")
    inputs, outputs = island_boundary(model, found_islands)
    for tensor, island in inputs.items():
        stack, seen = [tensor], set()
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if p is None or t in seen:
                continue
            seen.add(t)
            if p.op_type in QDQ_OPS:
                found.append(f"{label(p)} on the path into {island} (its input {tensor!r})")
            elif p.op_type in TRANSPARENT_OPS and p.name not in members:
                stack.extend(x for x in _data_inputs(p) if x)
    for tensor, island in outputs.items():
        stack, seen = [tensor], set()
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            for c in consumers.get(t, []):
                if c.name in members:
                    continue
                if c.op_type in QDQ_OPS:
                    found.append(f"{label(c)} on the path out of {island} (its output {tensor!r})")
                elif c.op_type in TRANSPARENT_OPS and t in _data_inputs(c):
                    stack.extend(x for x in c.output if x)
    return sorted(set(found))


def _constants(model: onnx.ModelProto) -> set[str]:
    found = {i.name for i in model.graph.initializer}
    return found | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


def merge_hidden_inputs(model: onnx.ModelProto) -> list[str]:
    """The hidden-state tensor entering each merge island, in graph (= layer) order.

    Plugin form: input 0 of each vidtldr::Merge node. Onnx form: the one tensor entering a
    `blocks.N.merge` island that no island produced (score comes from the saliency island, size
    from the previous merge) and that is not a constant."""
    merges = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == "Merge"]
    if merges:
        return [n.input[0] for n in merges]
    found_islands = island_nodes(model)
    members = [n for n in found_islands if n.part == "merge"]
    by_name = {n.name: n for n in model.graph.node}
    produced_in_island = {t for n in found_islands for t in by_name[n.node].output}
    constants = _constants(model)
    order: list[str] = []
    entering: dict[str, list[str]] = {}
    for m in members:
        if m.island not in entering:
            order.append(m.island)
            entering[m.island] = []
        for t in by_name[m.node].input:
            if (
                t
                and t not in produced_in_island
                and t not in constants
                and t not in entering[m.island]
            ):
                entering[m.island].append(t)
    found = []
    for island in order:
        if len(entering[island]) != 1:
            raise RuntimeFailure(
                f"cannot tell the hidden state entering {island}: candidates {entering[island]}"
            )
        found.append(entering[island][0])
    return found


def residual_feeders(
    model: onnx.ModelProto, candidates: Iterable[str], residual_adds: int = 2
) -> list[str]:
    """The nodes among `candidates` (node names, e.g. the weight MatMuls / Conv) whose outputs are
    summed, through at most `residual_adds` residual Adds, into the hidden state entering a merge
    island: in a pre-norm block that is the merge layer's attention projection and the previous
    block's MLP fc2 (or the patch embedding before block 0).

    The walk goes back from each merge island's hidden-state input through Add (a residual Add has
    two activation operands and counts against the budget; a bias Add has one constant operand and
    does not) and through data-movement ops, collects a candidate it reaches without entering it,
    and stops at anything else (LayerNorm, GELU, an island). Returned in graph order."""
    wanted = set(candidates)
    islands = {n.node for n in island_nodes(model)}
    constants = _constants(model)
    producer = {t: n for n in model.graph.node for t in n.output if t}
    hit: set[str] = set()
    for start in merge_hidden_inputs(model):
        stack, seen = [(start, residual_adds)], set()
        while stack:
            t, budget = stack.pop()
            p = producer.get(t)
            if p is None or (t, budget) in seen or p.name in islands:
                continue
            seen.add((t, budget))
            if p.name in wanted:
                hit.add(p.name)
            elif p.op_type == "Add":
                operands = [x for x in p.input if x and x not in constants]
                left = budget - 1 if len(operands) > 1 else budget
                if left >= 0:
                    stack.extend((x, left) for x in operands)
            elif p.op_type in TRANSPARENT_OPS:
                stack.extend((x, budget) for x in _data_inputs(p) if x and x not in constants)
    return [n.name for n in model.graph.node if n.name in hit]
