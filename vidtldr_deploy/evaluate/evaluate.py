"""What a schedule costs, on clips: every schedule against the unmerged PyTorch model.

The unmerged model is always the reference (its outputs are computed once per batch); each target
is a schedule string (the same PyTorch model, merged by vid-TLDR), a MethodSchedule (merged by
another method: ToMe, or random pairs as a baseline) or a GraphTarget (an exported graph, whose
schedule is the one it was exported with). Clips stream through in batches, so only the (clips x
output) vectors are kept, never the videos.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidtldr_deploy.constants import MergeMethod
from vidtldr_deploy.core.flops import FlopsReport, count_flops
from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.errors import InputError
from vidtldr_deploy.evaluate import metrics as m
from vidtldr_deploy.evaluate.labels import labels_for_clips
from vidtldr_deploy.evaluate.targets import (
    GraphTarget,
    MethodSchedule,
    iter_batches,
    primary_output,
    runner_outputs,
)
from vidtldr_deploy.models.presets import schedule_for
from vidtldr_deploy.models.vit import MergeViT
from vidtldr_deploy.runtime.pytorch import torch_outputs

Target = str | MethodSchedule | GraphTarget
Progress = Callable[[int, int], None]  # (clips done, schedules per clip)


@dataclass(frozen=True)
class ClipMetrics:
    name: str
    cosine: float
    rel_l2: float
    top1: float | None = None  # classifiers: unmerged top-1 within merged top-k
    top5: float | None = None
    kl: float | None = None
    retrieval_rank: int | None = None  # encoders: 0-based rank of the clip's own unmerged vector
    correct: float | None = None  # with a label: merged / unmerged prediction right
    baseline_correct: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ScheduleMetrics:
    cosine_mean: float
    cosine_min: float
    rel_l2_mean: float
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    kl_mean: float | None = None
    recall_at_1: float | None = None
    recall_at_5: float | None = None
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    labeled: int | None = None  # clips with a label (accuracy is over these)

    @property
    def drift(self) -> float:
        return 1.0 - self.cosine_mean

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ScheduleEvaluation:
    label: str  # the schedule string (with its method unless vid-TLDR), or the graph's label
    schedule: MergeSchedule
    flops: FlopsReport
    metrics: ScheduleMetrics
    per_clip: tuple[ClipMetrics, ...]
    runtime: str = "pytorch"  # or the graph label's runtime: "graph"
    method: str = MergeMethod.VIDTLDR.value

    def to_dict(self) -> dict:
        return {
            "schedule": self.label,
            "method": self.method,
            "runtime": self.runtime,
            "spec": self.schedule.to_dict(),
            "flops": {
                "merged": self.flops.merged,
                "baseline": self.flops.baseline,
                "ratio": self.flops.ratio,
            },
            "metrics": self.metrics.to_dict(),
            "per_clip": [c.to_dict() for c in self.per_clip],
        }


@dataclass(frozen=True)
class EvaluateResult:
    target: str
    arch: str
    frames: int
    output: str  # "pooled" or "logits"
    names: tuple[str, ...]
    schedules: tuple[ScheduleEvaluation, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()  # e.g. labels found for only some clips

    def to_dict(self) -> dict:
        return {
            "kind": "evaluate",
            "target": self.target,
            "arch": self.arch,
            "frames": self.frames,
            "output": self.output,
            "clips": {"count": len(self.names), "names": list(self.names)},
            "schedules": [s.to_dict() for s in self.schedules],
            **({"warnings": list(self.warnings)} if self.warnings else {}),
        }


def schedule_metrics(
    names: Sequence[str],
    ref: np.ndarray,
    out: np.ndarray,
    classifier: bool,
    labels: Sequence[int | None] | None = None,
) -> tuple[ScheduleMetrics, tuple[ClipMetrics, ...]]:
    """Summary and per-clip metrics of one schedule's outputs `out` against the unmerged `ref`."""
    cos, rel = m.cosine_rows(ref, out), m.relative_l2_rows(ref, out)
    n = len(names)
    cols: dict[str, list] = {"cosine": list(cos), "rel_l2": list(rel)}
    summary: dict = {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "rel_l2_mean": float(rel.mean()),
    }
    if classifier:
        top1, top5, kl = m.topk_hits(ref, out, 1), m.topk_hits(ref, out, 5), m.kl_rows(ref, out)
        cols |= {"top1": list(top1), "top5": list(top5), "kl": list(kl)}
        summary |= {
            "top1_agreement": float(top1.mean()),
            "top5_agreement": float(top5.mean()),
            "kl_mean": float(kl.mean()),
        }
        known = [i for i, lab in enumerate(labels or []) if lab is not None]
        if known:
            y = np.array([labels[i] for i in known])
            hit, base = m.label_hits(out[known], y), m.label_hits(ref[known], y)
            cols["correct"], cols["baseline_correct"] = [None] * n, [None] * n
            for j, i in enumerate(known):
                cols["correct"][i], cols["baseline_correct"][i] = hit[j], base[j]
            summary |= {
                "accuracy": float(hit.mean()),
                "baseline_accuracy": float(base.mean()),
                "labeled": len(known),
            }
    else:
        ranks = m.retrieval_ranks(ref, out)
        cols["retrieval_rank"] = [int(r) for r in ranks]
        summary |= {"recall_at_1": m.recall_at(ranks, 1), "recall_at_5": m.recall_at(ranks, 5)}
    per_clip = tuple(_clip(name, i, cols) for i, name in enumerate(names))
    return ScheduleMetrics(**summary), per_clip


def _clip(name: str, i: int, cols: Mapping[str, list]) -> ClipMetrics:
    values = {k: v[i] for k, v in cols.items() if v[i] is not None}
    return ClipMetrics(
        name, **{k: int(v) if k == "retrieval_rank" else float(v) for k, v in values.items()}
    )


def _resolve(model: MergeViT, target: Target, arch: str | None) -> tuple[str, MergeSchedule]:
    depth, n = model.cfg.depth, model.num_tokens
    if isinstance(target, GraphTarget):
        if len(target.rs) != depth:
            raise InputError(f"{target.label}: schedule has {len(target.rs)} layers, model {depth}")
        return target.label, schedule_for(target.spec, arch, depth, n, model.frames)
    if isinstance(target, MethodSchedule):
        return target.label, schedule_for(target.spec, arch, depth, n, model.frames)
    return target, schedule_for(target, arch, depth, n, model.frames)


def _method(target: Target) -> MergeMethod:
    if isinstance(target, MethodSchedule):
        return target.method
    if isinstance(target, GraphTarget):
        return MergeMethod.parse(target.method)
    return MergeMethod.VIDTLDR


def evaluate(
    model: MergeViT,
    clips: np.ndarray | Iterable[np.ndarray],
    names: Sequence[str],
    targets: Sequence[Target],
    *,
    arch: str | None = None,
    labels: Mapping[str, int] | None = None,
    label_roots: Sequence[str | Path] = (),
    target_label: str = "pytorch",
    progress: Progress | None = None,
) -> EvaluateResult:
    """Evaluate each target (a schedule string run on `model`, or a GraphTarget) on the clips
    against `model` unmerged; `labels` ({clip name or path: class}) adds accuracy to classifiers,
    matched to the clips strictly (evaluate/labels.py; `label_roots`: the --clips folders).
    `clips` may be a lazy iterable of batches (a ClipStream's real rows): only one batch is held
    at a time. `names` is read once they are consumed, so a stream may fill it as it goes."""
    output = primary_output(model)
    resolved = [_resolve(model, t, arch) for t in targets]
    zero = [0] * model.cfg.depth
    refs: list[np.ndarray] = []
    outs: list[list[np.ndarray]] = [[] for _ in targets]
    done = 0
    for video in iter_batches(clips):
        refs.append(torch_outputs(model, zero, video)[output])
        for i, (target, (_, schedule)) in enumerate(zip(targets, resolved)):
            if isinstance(target, GraphTarget):
                outs[i].append(runner_outputs(target, video, target.output or output))
            elif not schedule.merges:
                outs[i].append(refs[-1])  # the reference itself: drift exactly 0
            else:
                outs[i].append(torch_outputs(model, schedule.rs, video, _method(target))[output])
        done += len(video)
        if progress:
            progress(done, len(targets))
    if not refs:
        raise InputError("no clips to evaluate")
    ref = np.concatenate(refs)
    if len(ref) != len(names):
        raise InputError(f"{len(ref)} clips but {len(names)} names")
    clip_labels, warnings = None, []
    if labels:
        found, warnings = labels_for_clips(names, labels, model.cfg.num_classes, label_roots)
        clip_labels = [found.get(name) for name in names]
    evaluations = []
    for (label, schedule), parts, target in zip(resolved, outs, targets):
        summary, per_clip = schedule_metrics(
            names, ref, np.concatenate(parts), output == "logits", clip_labels
        )
        evaluations.append(
            ScheduleEvaluation(
                label=label,
                schedule=schedule,
                flops=count_flops(model.cfg, model.frames, schedule.rs),
                metrics=summary,
                per_clip=per_clip,
                runtime="graph" if isinstance(target, GraphTarget) else "pytorch",
                method=_method(target).value,
            )
        )
    return EvaluateResult(
        target=target_label,
        arch=arch or "",
        frames=model.frames,
        output=output,
        names=tuple(names),
        schedules=tuple(evaluations),
        warnings=tuple(warnings),
    )
