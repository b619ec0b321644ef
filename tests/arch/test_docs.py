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


# What a comment or docstring of the package may point at: a repository path (core/merge.py,
# vidtldr_deploy/clips/loader.py, docs/design.md), a file named on its own (loader.py) or a
# dotted name of the package (validate.inputs.make_inputs, files.check_outputs).
PACKAGES = ("core", "models", "clips", "export", "runtime", "validate", "profile", "evaluate",
            "tune", "pipelines", "serve", "report", "cli", "files", "errors", "constants")  # fmt: skip
TOP = ("vidtldr_deploy", "benchmarks", "docs", "docker", "plugins", "export_configs", "tests")
PATH_REF = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP + PACKAGES)})/[\w./-]*\w)")
FILE_REF = re.compile(r"(?<![\w./-])(\w+\.py)\b")
DOTTED_REF = re.compile(rf"(?<![\w./-])((?:{'|'.join(PACKAGES)})(?:\.\w+)+)(?![\w/-])")
NOT_NAMES = {"json", "md", "npz", "npy", "onnx", "plan", "py", "toml", "png", "mp4", "so", "txt",
             "csv", "pt", "pth", "bin", "safetensors", "pbtxt", "mkv", "avi", "webm", "mov", "cu",
             "h", "cpp", "dev", "tmp"}  # fmt: skip


def _notes(path: Path) -> list[str]:
    """The comments and docstrings (any string literal standing alone) of a Python file."""
    import ast
    import tokenize

    text = path.read_text()
    with path.open("rb") as f:
        notes = [t.string for t in tokenize.tokenize(f.readline) if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                notes.append(node.value.value)
    return notes


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[-1] in NOT_NAMES:
        return True  # a file name (report.json, files.py), not a dotted name
    obj = importlib.import_module("vidtldr_deploy")
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module("vidtldr_deploy." + ".".join(parts[: i + 1]))
        except ImportError:
            return False
    return True


def test_comments_and_docstrings_point_at_what_exists():
    files = {p.name for p in REPO.rglob("*.py") if ".git" not in p.parts}
    offenders = []
    for path in sorted(REPO.glob("vidtldr_deploy/**/*.py")):
        where = str(path.relative_to(REPO))
        for note in _notes(path):
            for ref in PATH_REF.findall(note):
                ref = ref.rstrip(".")
                if "/build" in ref or "*" in ref or "." not in ref.rsplit("/", 1)[-1]:
                    continue  # build outputs, globs and folders
                if not ((REPO / ref).exists() or (REPO / "vidtldr_deploy" / ref).exists()):
                    offenders.append(f"{where}: {ref}")
            for ref in FILE_REF.findall(note):
                if ref not in files:
                    offenders.append(f"{where}: {ref}")
            for ref in DOTTED_REF.findall(note):
                if not _resolves(ref):
                    offenders.append(f"{where}: {ref}")
    assert offenders == []


def test_no_issue_numbers_in_code():
    pattern = re.compile(r"\b(?:issue|issues) #?\d+|#\d{1,3}\b(?!\w)", re.I)
    offenders = [
        f"{p.relative_to(REPO)}: {m.group(0)}"
        for p in sorted([*REPO.glob("vidtldr_deploy/**/*.py"), *REPO.glob("tests/**/*.py")])
        for m in pattern.finditer(p.read_text())
    ]
    assert offenders == []


def test_readme_command_table_lists_every_command():
    from vidtldr_deploy.cli.main import app

    table = [
        line
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("| `vidtldr")
    ]
    names = {info.name for info in app.registered_commands}
    missing = [
        n
        for n in names
        if not any(f"`vidtldr {n} " in row or f"`vidtldr {n}`" in row for row in table)
    ]
    assert missing == []
