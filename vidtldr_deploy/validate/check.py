"""A whole validation: run (validate/run.py), then compare (validate/compare.py)."""

from __future__ import annotations

import numpy as np

from vidtldr_deploy.core.schedule import MergeSchedule
from vidtldr_deploy.models.source import LoadedModel
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.validate.compare import compare_validation
from vidtldr_deploy.validate.inputs import InputBatches
from vidtldr_deploy.validate.result import ValidationResult
from vidtldr_deploy.validate.run import inputs_description, run_validation
from vidtldr_deploy.validate.tolerances import Tolerances


def validate_runner(
    runner: Runner,
    target: str,
    loaded: LoadedModel,
    schedule: MergeSchedule,
    inputs: InputBatches | list[np.ndarray],
    tolerances: Tolerances,
    precision: str = "fp32",
    inputs_label: str = "",
    strict_tokens: bool = False,
) -> ValidationResult:
    """The runner (active) against PyTorch with the same schedule, under `tolerances`."""
    runs = run_validation(runner, loaded, schedule, inputs)
    return compare_validation(
        runs, target=target, loaded=loaded, schedule=schedule, tolerances=tolerances,
        precision=precision, inputs=inputs_description(inputs, inputs_label),
        strict_tokens=strict_tokens,
    )  # fmt: skip
