"""Every failure says what kind it is (docs/design.md, "Exit codes"): the base VidTLDRError is never
raised or built itself, and each kind has its documented exit code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vidtldr_deploy import errors

PACKAGE = Path(__file__).resolve().parents[2] / "vidtldr_deploy"


def _base_class_calls() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "VidTLDRError"
            ):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_the_base_error_is_never_raised_in_the_package():
    assert _base_class_calls() == []


def test_the_base_error_refuses_to_be_built():
    with pytest.raises(TypeError):
        errors.VidTLDRError("no kind")


@pytest.mark.parametrize(
    "kind, code",
    [
        (errors.InputError, 2),
        (errors.InputErrors, 2),
        (errors.EnvironmentProblem, 2),
        (errors.CheckFailed, 1),
        (errors.RuntimeFailure, 3),
    ],
)
def test_each_kind_has_its_documented_exit_code(kind, code):
    err = kind(["x"]) if kind is errors.InputErrors else kind("x")
    assert isinstance(err, errors.VidTLDRError)
    assert err.exit_code == code
    design = (PACKAGE.parent / "docs" / "design.md").read_text()
    assert f"`{kind.__name__}`" in design


def test_with_note_keeps_the_kind():
    for kind in (errors.InputError, errors.EnvironmentProblem, errors.RuntimeFailure):
        noted = errors.with_note(kind("built nothing"), "kept the graph")
        assert type(noted) is kind
        assert str(noted).endswith("kept the graph")
