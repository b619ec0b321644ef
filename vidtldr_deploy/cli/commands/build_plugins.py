"""`vidtldr build-plugins`: the CUDA kernel library and, where TensorRT is found, the plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidtldr_deploy.cli import args as opt
from vidtldr_deploy.cli.console import guarded, info, out, status
from vidtldr_deploy.cli.results import write_report_files


def build_plugins_command(
    build_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--build-dir",
            help="CMake build folder (default: plugins/build beside the package's sources).",
        ),
    ] = None,
    tensorrt_root: Annotated[
        Optional[Path],
        typer.Option(
            "--tensorrt-root", help="TensorRT install (default: $TENSORRT_ROOT or system paths)."
        ),
    ] = None,
    cuda_archs: Annotated[
        Optional[str],
        typer.Option(
            "--cuda-archs",
            help="CMAKE_CUDA_ARCHITECTURES, e.g. '87' for Orin (default covers Xavier, Orin and x86 GPUs).",
        ),
    ] = None,
    source_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--source-dir",
            help="The plugins/ CMake project (default: the one shipped beside the package).",
        ),
    ] = None,
    report: opt.Report = None,
) -> None:
    """Build libvidtldr_kernels (CUDA) and, where TensorRT is found, libvidtldr_plugins."""
    from vidtldr_deploy.files import check_output_path
    from vidtldr_deploy.runtime.plugin_build import (
        DEFAULT_BUILD_DIR,
        DEFAULT_SOURCE_DIR,
        PLUGIN_LIBRARY,
        build_plugins,
    )

    if report is not None:
        check_output_path(report, "--report")
    source_dir = source_dir or DEFAULT_SOURCE_DIR
    build_dir = build_dir or (
        DEFAULT_BUILD_DIR if source_dir == DEFAULT_SOURCE_DIR else source_dir / "build"
    )
    with status("building the plugins with CMake"):
        built = build_plugins(source_dir, build_dir, tensorrt_root, cuda_archs)
    for name, path in built.items():
        out.print(f"{name}: {path}", markup=False, highlight=False)
    rows = [[str(name), str(path)] for name, path in built.items()]
    write_report_files(report, {"kind": "build-plugins", "source_dir": str(source_dir),
                                "build_dir": str(build_dir), "headers": ["library", "path"],
                                "rows": rows})  # fmt: skip
    if not any(
        PLUGIN_LIBRARY in str(name) or PLUGIN_LIBRARY in str(path) for name, path in built.items()
    ):
        info(
            "note: the TensorRT plugin library was skipped (no TensorRT headers found): pass "
            "--tensorrt-root or set TENSORRT_ROOT to build libvidtldr_plugins"
        )


def register(app: typer.Typer) -> None:
    app.command("build-plugins")(guarded(build_plugins_command))
