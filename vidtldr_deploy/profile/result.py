"""The typed result of a profile, and its JSON form (the source of truth: scripts parse its keys,
so keys are only ever added)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidtldr_deploy.core.flops import FlopsReport
from vidtldr_deploy.runtime.breakdown import Breakdown

# The extra model an OpenVINO profile times: ONNX Runtime fp32 unmerged, the common baseline that
# `speedup_vs_onnxruntime_fp32` divides by.
ORT_FP32_BASELINE = "onnxruntime_fp32_baseline"
TIMING = "interleaved (ABBA): merged and baseline alternate every iteration on the same input"


@dataclass
class ModelLatency:
    stats: dict  # latency_stats(): latency_ms {mean, median, ...}, throughput, iterations
    samples_ms: list[float]
    peak_memory_mb: float | None = None
    rss_delta_mb: float | None = None
    breakdown: Breakdown | None = None

    @property
    def median_ms(self) -> float:
        return self.stats["latency_ms"]["median"]

    def to_dict(self) -> dict:
        out = {**self.stats, "samples_ms": self.samples_ms, "peak_memory_mb": self.peak_memory_mb,
               "rss_delta_mb": self.rss_delta_mb}  # fmt: skip
        if self.breakdown is not None:
            out["breakdown"] = self.breakdown.to_dict()
        return out


@dataclass
class ProfileResult:
    target: str
    runtime: str
    device: str
    arch: str
    source: str
    frames: int
    batch: int
    precision: str
    merge_impl: str
    compile: bool
    input_shape: list[int]
    iterations: int
    warmup: int
    inputs: str
    merged: ModelLatency
    baseline: ModelLatency
    flops: FlopsReport
    schedule: dict
    environment: dict
    toolkit_version: str
    more: dict[str, ModelLatency] = field(
        default_factory=dict
    )  # e.g. baseline_int8 (INT8 unmerged)
    extra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # profile/warnings.py: read before trusting
    duration_s: float | None = None  # --duration: time-boxed timing (at least `iterations`)

    @property
    def speedup(self) -> float:
        """Baseline median over merged median (> 1: merging is faster)."""
        return self.baseline.median_ms / self.merged.median_ms

    @property
    def speedup_vs_ideal(self) -> float:
        return self.speedup / self.flops.speedup

    def to_dict(self) -> dict:
        report: dict = {
            "kind": "profile",
            "toolkit_version": self.toolkit_version,
            "target": self.target,
            "runtime": self.runtime,
            "device": self.device,
            "arch": self.arch,
            "source": self.source,
            "frames": self.frames,
            "batch": self.batch,
            "precision": self.precision,
            "merge_impl": self.merge_impl,
            "compile": self.compile,
            "input_shape": self.input_shape,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "duration_s": self.duration_s,
            "timing": TIMING,
            "inputs": self.inputs,
            "merged": self.merged.to_dict(),
            "baseline": self.baseline.to_dict(),
            **{label: row.to_dict() for label, row in self.more.items()},
            "speedup": self.speedup,
            "flops": {
                "merged": self.flops.merged,
                "baseline": self.flops.baseline,
                "ratio": self.flops.ratio,
                "ideal_speedup": self.flops.speedup,
            },
            "speedup_vs_ideal": self.speedup_vs_ideal,
            "schedule": self.schedule,
            "environment": self.environment,
        }
        for label, row in self.more.items():
            if label == ORT_FP32_BASELINE:
                report["speedup_vs_onnxruntime_fp32"] = row.median_ms / self.merged.median_ms
            else:
                report[f"speedup_{label}"] = self.baseline.median_ms / row.median_ms
        if "baseline_int8" in self.more:
            # An INT8 profile: `speedup` is fp32 unmerged over INT8 merged, merging and precision
            # together. What merging alone gains is INT8 unmerged over INT8 merged, and that is
            # what the FLOPs ideal bounds; speedup_baseline_int8 is the precision gain alone.
            merging = self.more["baseline_int8"].median_ms / self.merged.median_ms
            report["merging_speedup"] = merging
            report["merging_vs_ideal"] = merging / self.flops.speedup
        report.update(self.extra)
        report["warnings"] = list(self.warnings)
        if self.notes:
            report["notes"] = self.notes
        return report
