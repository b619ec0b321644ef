"""Build and locate the native libraries of plugins/ (CUDA kernels, TensorRT plugins).

`build_plugins` drives CMake (configure + build) and turns any failure into a VidTLDRError that
carries the tail of CMake's output, so `vidtldr build-plugins` can print what went wrong.
`find_kernel_library` / `find_plugin_library` resolve a library from, in order: an explicit path
(file or folder), the VIDTLDR_PLUGIN_DIR environment variable, the default build folder
plugins/build of this checkout. No TensorRT import happens here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure, VidTLDRError

ENV_PLUGIN_DIR = "VIDTLDR_PLUGIN_DIR"
KERNEL_LIBRARY = "vidtldr_kernels"
PLUGIN_LIBRARY = "vidtldr_plugins"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE_DIR = REPO_ROOT / "plugins"
DEFAULT_BUILD_DIR = DEFAULT_SOURCE_DIR / "build"

_OUTPUT_TAIL_CHARS = 4000


def library_filename(name: str) -> str:
    """Platform file name CMake gives the shared library target `name`."""
    if sys.platform.startswith("win"):
        return f"{name}.dll"
    if sys.platform == "darwin":
        return f"lib{name}.dylib"
    return f"lib{name}.so"


def build_command_hint(build_dir: Path | str | None = None) -> str:
    """The commands that build the libraries, for error messages."""
    build = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    return (
        "build it with `vidtldr build-plugins` or "
        f"`cmake -S {DEFAULT_SOURCE_DIR} -B {build} && cmake --build {build} -j`"
    )


def _candidate_dirs(path: Path | str | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    env = os.environ.get(ENV_PLUGIN_DIR)
    if env:
        return [Path(env)]
    return [DEFAULT_BUILD_DIR]


def _find_library(name: str, path: Path | str | None, what: str, extra_hint: str = "") -> Path:
    filename = library_filename(name)
    searched: list[str] = []
    for candidate in _candidate_dirs(path):
        if candidate.is_file():
            return candidate.resolve()
        for location in (candidate / filename, candidate / "Release" / filename):
            searched.append(str(location))
            if location.is_file():
                return location.resolve()
    source = (
        "the given path"
        if path is not None
        else (
            f"${ENV_PLUGIN_DIR}" if os.environ.get(ENV_PLUGIN_DIR) else "the default build folder"
        )
    )
    raise EnvironmentProblem(
        f"{what} ({filename}) not found in {source} (looked at: {', '.join(searched)}); "
        f"{build_command_hint()}{extra_hint}, or point {ENV_PLUGIN_DIR} at the folder that holds it."
    )


def find_kernel_library(path: Path | str | None = None) -> Path:
    """Path of libvidtldr_kernels (the C ABI of the CUDA kernels, used by the ctypes binding)."""
    return _find_library(KERNEL_LIBRARY, path, "vid-TLDR CUDA kernel library")


def find_plugin_library(path: Path | str | None = None) -> Path:
    """Path of libvidtldr_plugins (the TensorRT Saliency / Merge plugins)."""
    return _find_library(
        PLUGIN_LIBRARY,
        path,
        "vid-TLDR TensorRT plugin library",
        extra_hint=" (TensorRT must be found at configure time: pass tensorrt_root / -DTENSORRT_ROOT)",
    )


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _OUTPUT_TAIL_CHARS else "...\n" + text[-_OUTPUT_TAIL_CHARS:]


def _run(cmd: list[str], step: str, env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    except OSError as exc:  # cmake vanished or is not executable
        raise EnvironmentProblem(f"could not run {cmd[0]} for the {step} step: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeFailure(
            f"plugin {step} failed (exit code {proc.returncode}): {' '.join(cmd)}\n"
            f"--- cmake output (tail) ---\n{_tail(proc.stdout)}"
        )
    return proc.stdout


def _cuda_compiler_env() -> dict[str, str]:
    """Environment for CMake; points CUDACXX at the default toolkit when nvcc is not on PATH."""
    env = dict(os.environ)
    if "CUDACXX" not in env and shutil.which("nvcc") is None:
        for root in (env.get("CUDA_HOME"), env.get("CUDA_PATH"), "/usr/local/cuda"):
            if root and (Path(root) / "bin" / "nvcc").is_file():
                env["CUDACXX"] = str(Path(root) / "bin" / "nvcc")
                break
    return env


def build_plugins(
    source_dir: Path | str | None = None,
    build_dir: Path | str | None = None,
    tensorrt_root: Path | str | None = None,
    cuda_archs: str | Sequence[str | int] | None = None,
    build_type: str = "Release",
    jobs: int | None = None,
) -> dict[str, Path]:
    """Configure and build plugins/ with CMake; returns {"kernels": path[, "plugins": path]}.

    cuda_archs: e.g. "87" or ["80", "90"] (CMAKE_CUDA_ARCHITECTURES); None keeps the project default
    (72;75;80;86;87;89;90, minus what the CUDA toolkit cannot target). tensorrt_root: folder with
    include/NvInfer.h and lib/libnvinfer*; without it (or $TENSORRT_ROOT / system paths) only the
    kernel library is built.
    """
    cmake = shutil.which("cmake")
    if cmake is None:
        raise EnvironmentProblem(
            "cmake not found on PATH; install CMake >= 3.18 (`pip install cmake` or your package manager) "
            "and a CUDA toolkit with nvcc, then retry"
        )
    source = Path(source_dir) if source_dir is not None else DEFAULT_SOURCE_DIR
    build = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    if not (source / "CMakeLists.txt").is_file():
        raise InputError(
            f"--source-dir {source} has no CMakeLists.txt: pass the plugins/ folder of vidtldr-deploy as --source-dir"
        )
    build.mkdir(parents=True, exist_ok=True)

    configure = [cmake, "-S", str(source), "-B", str(build), f"-DCMAKE_BUILD_TYPE={build_type}"]
    if cuda_archs is not None:
        archs = cuda_archs if isinstance(cuda_archs, str) else ";".join(str(a) for a in cuda_archs)
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    if tensorrt_root is not None:
        root = Path(tensorrt_root)
        if not root.is_dir():
            raise InputError(
                f"TensorRT root {root} is not a folder (expected include/ and lib/ inside)"
            )
        configure += [f"-DTENSORRT_ROOT={root}", "-DVIDTLDR_BUILD_PLUGINS=ON"]
    env = _cuda_compiler_env()
    _run(configure, "configure", env)
    _run(
        [
            cmake,
            "--build",
            str(build),
            "--config",
            build_type,
            "-j",
            str(jobs or os.cpu_count() or 2),
        ],
        "build",
        env,
    )

    built = {"kernels": find_kernel_library(build)}
    try:
        built["plugins"] = find_plugin_library(build)
    except VidTLDRError:
        if (
            tensorrt_root is not None
        ):  # asked for plugins explicitly: CMake should have failed already
            raise
    return built
