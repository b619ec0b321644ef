"""Shared helpers of the benchmark scripts (not a library module: run the scripts from a checkout)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

import torch  # noqa: E402

from vidtldr_deploy.models.registry import get_architecture  # noqa: E402
from vidtldr_deploy.models.source import LoadedModel  # noqa: E402


def cuda_missing(script: str) -> bool:
    """True (after saying why on stderr) when no CUDA device is visible: GPU benchmarks then
    measure nothing and exit 2 rather than report CPU numbers as GPU ones."""
    if torch.cuda.is_available():
        return False
    print(
        f"{script} needs a CUDA GPU and a CUDA build of PyTorch; this is torch {torch.__version__} "
        "with no CUDA device visible. Nothing was measured.",
        file=sys.stderr,
    )
    return True


def random_model(arch: str, frames: int, seed: int = 0) -> LoadedModel:
    """`arch` with seeded random weights: latency does not depend on the weights' values, but the
    merge's choices do, so the seed is recorded."""
    torch.manual_seed(seed)
    spec = get_architecture(arch)
    model = spec.build(frames=frames).eval()
    label = f"random:{arch}:seed{seed}"
    return LoadedModel(
        model,
        spec.name,
        model.frames,
        label,
        "",
        f"{arch} with seeded random weights (seed {seed})",
    )


def machine() -> str:
    text = f"{platform.machine()} {platform.processor() or ''}".strip()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                text = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return f"{text}; {torch.get_num_threads()} torch threads; torch {torch.__version__}"


def write_json(path: str | Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote {path}")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def strip_samples(report: dict) -> dict:
    """A profile report without the raw samples (kept short in benchmark JSON)."""
    out = dict(report)
    for key in ("merged", "baseline"):
        if key in out:
            out[key] = {k: v for k, v in out[key].items() if k != "samples_ms"}
    return out
