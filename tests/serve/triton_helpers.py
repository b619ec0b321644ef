"""Reading a written repository back through Triton's schema (shared by the serving tests)."""

from __future__ import annotations

import os
from pathlib import Path

from vidtldr_deploy.files import sha256_file
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.serve.triton_config import parse_pbtxt

BATCH = 2  # the static batch the tiny graphs are exported with
# What `vidtldr triton --plugins` checks of a library: an ELF header of a little-endian 64-bit
# shared object (e_type ET_DYN); the rest is filler.
FAKE_SHARED_OBJECT = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + b"fake"


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


def write_fake_plan(
    folder: Path, stem: str = "engine", plugin: Path | None = None,
    batch: sc.BatchProfile | None = None,
) -> Path:  # fmt: skip
    """An engine file that only its sidecar describes (no TensorRT here), written by the sidecar
    module's own writer so the engine hash is filled in as a real build does. `batch`: a
    dynamic-batch engine's range (shapes at its max)."""
    first = BATCH if batch is None else batch.max
    sidecar = sc.make_sidecar(
        tensorrt_version="10.7.0",
        cuda_version="12.6",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        inputs={"video": sc.io_spec((first, 3, 4, 32, 32), "float32")},
        outputs={
            "tokens": sc.io_spec((first, 36, 64), "float32"),
            "pooled": sc.io_spec((first, 64), "float32"),
        },
        schedule={"spec": "0.25x2", "layers": []},
        onnx_sha256="ee" * 32,
        plugin_library=None if plugin is None else plugin,
        plugin_library_sha256=None if plugin is None else sha256_file(plugin),
        arch="umt-tiny",
        merge_impl="plugin" if plugin else "onnx",
        plugin_layers=4 if plugin else 0,
        batch=batch,
    )
    path = folder / f"{stem}.plan"
    sc.write_engine_and_sidecar(path, b"not really an engine " + stem.encode(), sidecar)
    return path
