"""The typed result of a validation, and its JSON form (the source of truth every rendering reads)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidtldr_deploy import __version__
from vidtldr_deploy.validate.metrics import OutputComparison
from vidtldr_deploy.validate.tolerances import Tolerances


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
