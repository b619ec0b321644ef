"""Validation (DESIGN.md): a runtime's outputs against the PyTorch model with the same schedule,
with the unmerged model's distance beside them as the cost of merging (reported, never a failure)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import torch

from vidtldr_deploy import __version__
from vidtldr_deploy.compare import OutputComparison, Tolerances, compare_outputs
from vidtldr_deploy.core.schedule import MergeSchedule, resolve_schedule
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.export.onnx_export import read_metadata
from vidtldr_deploy.models.source import DEMO_PREFIX, LoadedModel, load_source
from vidtldr_deploy.models.vit import MergeViT


class Runner(Protocol):
    name: str

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]: ...


def make_inputs(
    shape: tuple[int, ...], seed: int = 0, count: int = 2, path: str | Path | None = None
) -> list[np.ndarray]:
    """Seeded random clips of `shape`, or the clips in a .npy (one batch) / .npz (one per array)."""
    if path is None:
        gen = torch.Generator().manual_seed(seed)
        return [torch.randn(shape, generator=gen).numpy() for _ in range(count)]
    path = Path(path)
    if not path.exists():
        raise VidTLDRError(f"input file {path} does not exist")
    try:
        loaded = np.load(path)
        arrays = [loaded] if isinstance(loaded, np.ndarray) else [loaded[k] for k in loaded.files]
    except (ValueError, OSError) as err:
        raise VidTLDRError(f"{path} is not a readable .npy/.npz file: {err}") from err
    for arr in arrays:
        if tuple(arr.shape) != tuple(shape):
            raise VidTLDRError(
                f"{path}: clip batch of shape {tuple(arr.shape)}, but the model takes {tuple(shape)}"
            )
    return [a.astype(np.float32) for a in arrays]


def torch_outputs(model: MergeViT, rs: list[int], video: np.ndarray) -> dict[str, np.ndarray]:
    saved = model.rs
    model.set_schedule(rs)
    try:
        with torch.inference_mode():
            outs = model(torch.from_numpy(video))
    finally:
        model.set_schedule(saved)
    return {name: t.float().numpy() for name, t in zip(model.output_names, outs)}


def _stack(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


@dataclass
class ValidationResult:
    target: str
    runtime: str
    arch: str
    source: str
    schedule: dict
    precision: str
    tolerances: Tolerances
    inputs: str
    outputs: list[OutputComparison]
    merge_cost: list[OutputComparison]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs if o.gating)

    def to_dict(self) -> dict:
        def rows(items: list[OutputComparison]) -> list[dict]:
            return [
                {"name": o.name, "shape": list(o.shape), "metrics": o.metrics,
                 "failures": o.failures, "passed": o.passed, "gating": o.gating}
                for o in items
            ]  # fmt: skip

        return {
            "kind": "validation",
            "toolkit_version": __version__,
            "target": self.target,
            "runtime": self.runtime,
            "arch": self.arch,
            "source": self.source,
            "precision": self.precision,
            "inputs": self.inputs,
            "tolerances": self.tolerances.to_dict(),
            "schedule": self.schedule,
            "outputs": rows(self.outputs),
            "merge_cost": rows(self.merge_cost),
            "seconds": self.seconds,
            "passed": self.passed,
        }


def validate_runner(
    runner: Runner,
    target: str,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: list[np.ndarray],
    tolerances: Tolerances,
    precision: str = "fp32",
    inputs_label: str = "",
    strict_tokens: bool = False,
) -> ValidationResult:
    """Run `inputs` through the runner and through PyTorch (merged and unmerged) and compare.

    Once the model merges, `tokens` is compared row by row but does not decide the verdict unless
    `strict_tokens`: when two runtimes merge a different token at a near-tie, every kept token
    after it shifts by one row, so a row-aligned comparison reports a large error for a correct
    graph. The pooled vector and logits carry the verdict; they move only by the flip's real effect.
    """
    t0 = time.perf_counter()
    got = _stack([runner.run(v) for v in inputs])
    t1 = time.perf_counter()
    merged = _stack([torch_outputs(loaded.model, schedule.rs, v) for v in inputs])
    baseline = _stack([torch_outputs(loaded.model, [0] * len(schedule.rs), v) for v in inputs])
    t2 = time.perf_counter()
    # Token outputs differ in length once merged; the pooled/logits outputs carry the comparison.
    comparable = {k: v for k, v in baseline.items() if v.shape == merged[k].shape}
    return ValidationResult(
        target=target,
        runtime=runner.name,
        arch=loaded.arch,
        source=loaded.label,
        schedule=schedule.to_dict(),
        precision=precision,
        tolerances=tolerances,
        inputs=inputs_label or f"{len(inputs)} seeded random clip batches",
        outputs=_mark_gating(compare_outputs(merged, got, tolerances), schedule, strict_tokens),
        merge_cost=compare_outputs(comparable, {k: merged[k] for k in comparable}, None),
        seconds={"runtime": t1 - t0, "pytorch": t2 - t1},
    )


TOKEN_OUTPUT = "tokens"


def _mark_gating(
    results: list[OutputComparison], schedule: MergeSchedule, strict_tokens: bool
) -> list[OutputComparison]:
    if schedule.merges and not strict_tokens:
        for result in results:
            result.gating = result.name != TOKEN_OUTPUT
    return results


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
    schedule = resolve_schedule(spec, loaded.model.cfg.depth, loaded.model.num_tokens, loaded.arch)
    shape = tuple(json.loads(meta["input_shape"]))
    return GraphReference(loaded, schedule, shape, meta)
