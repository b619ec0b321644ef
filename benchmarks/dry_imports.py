"""gpu_checks.sh with DRY_RUN=1: import every Python module a step's command would run, so a script
that fails on import is found on a machine without a GPU, before a GPU is lent.

    python3 benchmarks/dry_imports.py CMD...     (the step's command, as gpu_checks.sh runs it)

A script (python3 path.py ...) is imported without running its main; `-m pytest FILES` is
collected; `-c CODE` runs the code's import statements; `-m MODULE` imports the module. Commands
with no Python in them pass. Exit 0 when every import worked, 1 otherwise (the error printed).
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import traceback
from pathlib import Path


def _python_args(argv: list[str]) -> list[str] | None:
    """The arguments of the first python interpreter in the command (ncu ... python3 -c ...)."""
    for i, word in enumerate(argv):
        if Path(word).name.startswith("python"):
            return argv[i + 1 :]
    return None


def _import_statements(code: str) -> str:
    statements = [s.strip() for line in code.splitlines() for s in line.split(";")]
    return "\n".join(s for s in statements if s.startswith(("import ", "from ")))


def check(argv: list[str]) -> int:
    args = _python_args(argv)
    if not args:
        return 0
    if args[:2] == ["-m", "pytest"]:
        files = [a for a in args[2:] if a.endswith(".py") or "/" in a]
        cmd = [sys.executable, "-m", "pytest", "-qq", "--collect-only", "-p", "no:cacheprovider"]
        return subprocess.run(cmd + files).returncode
    if args[0] == "-m":
        if args[1] != "pip":  # pip installs; nothing of the project's to import
            importlib.import_module(args[1])
        return 0
    if args[0] == "-c":
        exec(compile(_import_statements(args[1]), "<step -c>", "exec"), {})
        return 0
    script = Path(args[0])
    sys.path.insert(0, str(script.resolve().parent))  # the scripts import their _common
    spec = importlib.util.spec_from_file_location(f"dry_{script.stem}", script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return 0


def main() -> int:
    try:
        rc = check(sys.argv[1:])
    except Exception:
        traceback.print_exc()
        rc = 1
    print(f"   imports {'ok' if rc == 0 else 'FAILED'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
