"""Evaluate: what merge schedules cost on clips, against the unmerged model."""

from __future__ import annotations

from vidtldr_deploy.evaluate.evaluate import (
    ClipMetrics,
    EvaluateResult,
    ScheduleEvaluation,
    ScheduleMetrics,
    evaluate,
    schedule_metrics,
)
from vidtldr_deploy.evaluate.labels import (
    check_classifier,
    labels_for_clips,
    load_labels,
    match_labels,
)
from vidtldr_deploy.evaluate.plot import plot_drift
from vidtldr_deploy.evaluate.targets import (
    GraphTarget,
    MethodSchedule,
    rs_from_metadata,
    schedule_string,
)

__all__ = [
    "ClipMetrics",
    "EvaluateResult",
    "GraphTarget",
    "MethodSchedule",
    "ScheduleEvaluation",
    "ScheduleMetrics",
    "evaluate",
    "check_classifier",
    "labels_for_clips",
    "load_labels",
    "match_labels",
    "plot_drift",
    "rs_from_metadata",
    "schedule_metrics",
    "schedule_string",
]
