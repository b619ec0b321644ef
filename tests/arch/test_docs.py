"""The documentation stays true to the code: every `vidtldr_deploy` import its Python snippets show
resolves, every repository path it names in backticks exists, and no file points at design notes
outside the repository."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
IMPORT = re.compile(r"^\s*from (vidtldr_deploy[\w.]*) import \(?([\w, ]+)", re.M)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_imports_resolve(doc):
    for module, names in IMPORT.findall(doc.read_text()):
        mod = importlib.import_module(module)
        for name in filter(None, (n.strip() for n in names.split(","))):
            assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}"), (
                f"{doc.name}: {module}.{name}"
            )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_package_paths_exist(doc):
    for path in re.findall(
        r"`((?:vidtldr_deploy|benchmarks|docs|docker|plugins|export_configs|tests)/[\w./-]+)`",
        doc.read_text(),
    ):
        if "/build" in path:  # build outputs (plugins/build) exist only after a build
            continue
        assert (REPO / path.rstrip("/")).exists() or (REPO / "vidtldr_deploy" / path).exists(), (
            f"{doc.name}: {path}"
        )


def test_nothing_points_outside_the_repository():
    offenders = []
    this = Path(__file__).resolve()
    files = [
        *REPO.glob("vidtldr_deploy/**/*.py"),
        *REPO.glob("tests/**/*.py"),
        *REPO.glob("benchmarks/*"),
        *DOCS,
    ]
    for path in (p for p in files if p.resolve() != this and p.is_file()):
        text = path.read_text()
        if "../shared" in text or re.search(r"(?<![\w/])DESIGN\.md", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
