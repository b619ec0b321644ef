"""Reading a written repository back through Triton's schema (shared by the serving tests)."""

from __future__ import annotations

import os
from pathlib import Path

from vidtldr_deploy.serve.triton_config import parse_pbtxt


def read_config(repo: Path, name: str):
    return parse_pbtxt((repo / name / "config.pbtxt").read_text())


def io_of(config) -> dict[str, tuple[str, list[int]]]:
    from tritonclient.grpc import model_config_pb2 as pb2

    items = list(config.input) + list(config.output)
    return {t.name: (pb2.DataType.Name(t.data_type), list(t.dims)) for t in items}


def all_configs(repo: Path) -> dict:
    return {p.parent.name: parse_pbtxt(p.read_text()) for p in repo.glob("*/config.pbtxt")}


def leftovers(folder: Path) -> list[str]:
    """Temporary build folders the repository writer could have left beside -o."""
    return sorted(p for p in os.listdir(folder) if p.startswith("."))
