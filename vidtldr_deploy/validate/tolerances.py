"""Tolerances a comparison must meet, per precision, and where they come from (flags over an export
config's [tolerances] over the per-precision defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from vidtldr_deploy.errors import InputError


@dataclass(frozen=True)
class Tolerances:
    """Bounds a comparison must meet: upper bounds on errors, lower bounds on similarities.

    The fp32 defaults are not float32 rounding: merging is a discrete choice, and once the token
    count is large (UMT-B at 12 frames: 1176 candidates, neighbouring best scores ~1e-6 apart) two
    correct runtimes whose arithmetic differs in the last bits merge a different token now and
    then. Measured on UMT-B, 12 frames, 600,200,100, ONNX Runtime against PyTorch: pooled rel_l2
    4.7e-3, max_abs 2.3e-2, cosine > 0.99995; the whole cost of merging is rel_l2 ~6e-2.
    """

    max_abs: float = 5e-2
    mean_abs: float = 5e-3
    cosine: float = 0.9995
    rel_l2: float = 1e-2
    top1: float = 0.9
    top5: float = 0.8

    def bound(self, metric: str) -> float | None:
        return getattr(self, metric, None)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TOLERANCES: dict[str, Tolerances] = {
    "fp32": Tolerances(),
    "fp16": Tolerances(max_abs=1e-1, mean_abs=1e-2, cosine=0.999, rel_l2=3e-2),
    # INT8 Q/DQ against the fp32 model: measured worst pooled cosine 0.9958 / rel_l2 0.049 on the
    # tiny demo, 0.99977 / 0.019 on UMT-B (benchmarks/bench_int8.py).
    "int8": Tolerances(max_abs=5e-1, mean_abs=5e-2, cosine=0.99, rel_l2=1e-1, top1=0.8, top5=0.6),
    # OpenVINO bf16 against the fp32 model, measured (pooled, worst clip; benchmarks/bench_openvino.py):
    # UMT-B 4 frames 300,100, random weights: cosine 0.9948, rel_l2 0.098; tiny demo 0.25x2: cosine
    # 0.985-0.993, rel_l2 0.08-0.14, max_abs 0.30-0.48, mean_abs 0.06-0.11. bf16 rounding of the
    # hidden state flips merge decisions (~87% agree), so the bounds sit above INT8's.
    "bf16": Tolerances(max_abs=1.0, mean_abs=1.5e-1, cosine=0.98, rel_l2=2e-1, top1=0.8, top5=0.6),
}


def default_tolerances(precision: str) -> Tolerances:
    return DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])


def apply_overrides(
    base: Tolerances, overrides: Mapping[str, float], where: str = ""
) -> Tolerances:
    """`base` with the values an export config's [tolerances] or the flags give; unknown names and
    values that are not numbers are input errors naming `where` they came from."""
    known = {f.name for f in fields(Tolerances)}
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(
            f"{prefix}unknown tolerance(s) {', '.join(unknown)}: expected {', '.join(sorted(known))}"
        )
    for key, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{prefix}tolerance {key} must be a number, got {value!r}")
    return Tolerances(**{**base.to_dict(), **{k: float(v) for k, v in overrides.items()}})
