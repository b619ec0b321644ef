"""ONNX Runtime runner: one session, one static input, outputs by name; its per-part breakdown
comes from ONNX Runtime's own session profiling, parsed here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from vidtldr_deploy.constants import MERGE_OPS
from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.runtime.breakdown import Breakdown

DEVICE_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}


class OnnxRuntimeRunner(Runner):
    """An ONNX graph in one ONNX Runtime session. `merge_inputs=True` also returns the hidden state
    entering each merge island (runtime/base.py), read from the graph itself: the session runs a
    copy of the graph with those tensors added as outputs (fp32 by construction: no Q/DQ sits on
    an island's path, see export.merge_islands)."""

    name = "onnxruntime"

    def __init__(
        self, path: str | Path, device: str = "cpu", profile_prefix: str | None = None,
        threads: int | None = None, merge_inputs: bool = False,
    ):  # fmt: skip
        if device not in DEVICE_PROVIDERS:
            raise InputError(f"--device must be cpu or cuda for onnxruntime, got {device!r}")
        self.path = Path(path)
        self.device = device
        self.profile_prefix = profile_prefix
        self.threads = threads
        self.merge_inputs = merge_inputs
        self.session = None
        self.renamed: dict[str, str] = {}  # graph tensor -> merge_input.<i>
        self.graph_outputs: list[str] = []

    def activate(self) -> None:
        import onnxruntime as ort

        providers = DEVICE_PROVIDERS[self.device]
        if providers[0] not in ort.get_available_providers():
            raise EnvironmentProblem(
                f"ONNX Runtime has no {providers[0]} here (available: "
                f"{', '.join(ort.get_available_providers())}): install onnxruntime-gpu "
                f"(pip install 'vidtldr-deploy[gpu]') for --device cuda"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:  # None: ORT's default (one thread per physical core)
            options.intra_op_num_threads = self.threads
        if self.profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = self.profile_prefix
        self.renamed, self.graph_outputs = {}, []
        source = self._graph_with_merge_inputs() if self.merge_inputs else str(self.path)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as err:  # ORT raises its own exception types per failure
            explain_graph_form(self.path)  # a graph written for TensorRT only: say so by name
            raise RuntimeFailure(f"ONNX Runtime could not load {self.path}: {err}") from err
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape)
        self._session_outputs = [o.name for o in self.session.get_outputs()]
        exposed = set(self.renamed) - set(self.graph_outputs)
        self.output_names = [n for n in self._session_outputs if n not in exposed]
        self.output_names += list(self.renamed.values())

    def _graph_with_merge_inputs(self) -> bytes:
        from vidtldr_deploy.export.merge_islands import merge_hidden_inputs
        from vidtldr_deploy.runtime.base import merge_input_name

        model = onnx.load(str(self.path))
        self.graph_outputs = [o.name for o in model.graph.output]
        exposed = merge_hidden_inputs(model)
        for tensor in exposed:
            if tensor not in self.graph_outputs:
                model.graph.output.append(
                    onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
                )
        self.renamed = {t: merge_input_name(i) for i, t in enumerate(exposed)}
        return model.SerializeToString()

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        if self.session is None:
            raise self.inactive()
        # A named (dynamic) dimension, the batch of a --max-batch export, takes any size: the
        # graph runs any batch; its 1..N range is what Triton's max_batch_size is told.
        fits = len(video.shape) == len(self.input_shape) and all(
            not isinstance(want, int) or got == want
            for got, want in zip(video.shape, self.input_shape)
        )
        if not fits:
            raise InputError(
                f"input shape {tuple(video.shape)} does not match the graph's input "
                f"{self.input_shape}"
            )
        try:
            outputs = self.session.run(None, {self.input_name: video.astype(np.float32)})
        except Exception as err:  # noqa: BLE001 - ORT raises its own types (Fail, RuntimeException)
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            detail = lines[0] if lines else type(err).__name__
            raise RuntimeFailure(
                f"ONNX Runtime failed running {self.path}: {detail}. Check the graph with "
                f"`vidtldr validate {self.path}`, or re-export it"
            ) from err
        named = dict(zip(self._session_outputs, outputs))
        for tensor, name in self.renamed.items():  # a graph output may also be a merge input
            named[name] = named[tensor] if tensor in self.graph_outputs else named.pop(tensor)
        return named

    def end_profiling(self) -> str | None:
        return self.session.end_profiling()

    def close(self) -> None:
        self.session = None

    def breakdown(self, video, schedule_rows, iterations, workdir) -> Breakdown:
        return ort_breakdown(self.path, video, self.device, iterations, workdir)


def explain_graph_form(path: str | Path) -> None:
    """Raise GraphFormError if `path` records no local functions for its vidtldr nodes."""
    from vidtldr_deploy.export.metadata import read_metadata, require_local_functions

    try:
        meta = read_metadata(onnx.load(str(path), load_external_data=False))
    except Exception:  # unreadable: ONNX Runtime's own error says more
        return
    require_local_functions(meta, path)


MERGE_FUNCTIONS = MERGE_OPS  # local functions ORT inlines as _inlfunc_<name>_*


def merge_step_nodes(model_path: Path) -> dict[str, str]:
    """Graph node name -> "Saliency" / "Merge" for the standard-op nodes exported from a block's
    SaliencyStep / MergeStep (torch.onnx records each node's module classes in its metadata), so a
    `--merge-impl onnx` graph's merge steps can be timed too."""
    from vidtldr_deploy.models.vit import MergeStep, SaliencyStep

    classes = {"Saliency": SaliencyStep, "Merge": MergeStep}
    marks = {part: f"'{cls.__module__}.{cls.__qualname__}'" for part, cls in classes.items()}
    parts: dict[str, str] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.class_hierarchy":
                part = next((p for p, mark in marks.items() if mark in prop.value), None)
                if part is not None:
                    parts[node.name] = part
    return parts


def parse_ort_profile(
    events: list[dict], skip_runs: int = 1, node_parts: dict[str, str] | None = None
) -> dict:
    """Sum an ONNX Runtime session profile per op type (ms per run), skipping the first
    `skip_runs` runs; nodes inlined from the `vidtldr` Saliency / Merge functions, and nodes that
    `node_parts` (merge_step_nodes) names, are also summed as the merge subgraph. Nodes that ONNX
    Runtime fused under a new name are not attributed."""
    node_parts = node_parts or {}
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    if not runs:
        return {"by_op_type": {}, "merge_subgraph": {}, "nodes_ms": 0.0, "runs": 0}
    start = runs[skip_runs][0] if len(runs) > skip_runs else runs[0][0]
    counted = len(runs) - skip_runs if len(runs) > skip_runs else len(runs)
    by_op: dict[str, float] = {}
    sub = {name: 0.0 for name in MERGE_FUNCTIONS}
    total = 0.0
    for e in events:
        if (
            e.get("cat") != "Node"
            or not e.get("name", "").endswith("_kernel_time")
            or e["ts"] < start
        ):
            continue
        ms = e["dur"] / 1e3
        op = e.get("args", {}).get("op_name", "?")
        by_op[op] = by_op.get(op, 0.0) + ms
        total += ms
        inlined = next(
            (name for name in MERGE_FUNCTIONS if e["name"].startswith(f"_inlfunc_{name}_")), None
        )
        part = inlined or node_parts.get(e["name"][: -len("_kernel_time")])
        if part is not None:
            sub[part] += ms
    per_run = {k: v / counted for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
    return {
        "by_op_type": per_run,
        "merge_subgraph": {k: v / counted for k, v in sub.items()},
        "nodes_ms": total / counted,
        "runs": counted,
    }


def ort_breakdown(
    path: Path, video: np.ndarray, device: str, iterations: int, workdir: Path
) -> Breakdown:
    """Per-op-type times from an ONNX Runtime session profile (its own session, after timing)."""
    prefix = str(workdir / f"ort_{Path(path).stem}")
    with OnnxRuntimeRunner(path, device, profile_prefix=prefix) as runner:
        for _ in range(iterations + 1):
            runner.run(video)
        trace = runner.end_profiling()
    with open(trace) as f:
        parsed = parse_ort_profile(
            json.load(f), skip_runs=1, node_parts=merge_step_nodes(Path(path))
        )
    sal, mer = parsed["merge_subgraph"]["Saliency"], parsed["merge_subgraph"]["Merge"]
    total = parsed["nodes_ms"]
    parts = {"saliency": sal, "merge": mer, "other": max(0.0, total - sal - mer), "total": total}
    out = Breakdown(
        source="onnxruntime session profiling (sum of node kernel times)", parts=parts,
        ops=[{"name": k, "ms": v} for k, v in parsed["by_op_type"].items()],
    )  # fmt: skip
    if not any(parsed["merge_subgraph"].values()):
        out.note = (
            "saliency/merge are not attributable in this graph (neither vidtldr functions nor "
            "torch.onnx module metadata on its nodes)"
        )
    return out
