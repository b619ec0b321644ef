"""The CUDA kernel library compiles with nvcc and exports its C ABI (no GPU needed).

Builds plugins/ through `build_plugins` (the function behind `vidtldr build-plugins`) into a temp
folder for a single architecture to keep CI fast, then checks the exported symbols.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.runtime import plugin_build

C_SYMBOLS = (
    "vidtldr_abi_version",
    "vidtldr_error_string",
    "vidtldr_saliency",
    "vidtldr_saliency_workspace_size",
    "vidtldr_merge",
    "vidtldr_merge_workspace_size",
)


def _nvcc() -> str | None:
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


needs_toolchain = pytest.mark.skipif(
    shutil.which("cmake") is None or _nvcc() is None,
    reason="needs cmake and the CUDA compiler nvcc (install cmake and a CUDA toolkit)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    build_dir = tmp_path_factory.mktemp("plugins-build")
    # One architecture keeps the compile short; "80" is supported by every CUDA 11.x-13.x nvcc.
    return plugin_build.build_plugins(build_dir=build_dir, cuda_archs="80")


@needs_toolchain
def test_kernel_library_is_built(built: dict[str, Path]) -> None:
    lib = built["kernels"]
    assert lib.is_file() and lib.name == plugin_build.library_filename("vidtldr_kernels")
    assert plugin_build.find_kernel_library(lib.parent) == lib


@needs_toolchain
def test_kernel_library_exports_c_abi(built: dict[str, Path]) -> None:
    lib = built["kernels"]
    if shutil.which("nm"):
        out = subprocess.run(
            ["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True
        )
        exported = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
        assert set(C_SYMBOLS) <= exported
        # Only the C ABI is public: the static CUDA runtime and C++ internals stay hidden.
        assert not [s for s in exported if s.startswith("cuda") or s.startswith("_Z")]
    # The runtime is linked statically, so the library loads without a GPU or libcudart on the path.
    handle = ctypes.CDLL(str(lib))
    for name in C_SYMBOLS:
        assert hasattr(handle, name)
    handle.vidtldr_abi_version.restype = ctypes.c_int
    assert handle.vidtldr_abi_version() == 1
    handle.vidtldr_error_string.restype = ctypes.c_char_p
    assert b"dtype" in handle.vidtldr_error_string(2)
    # Workspace sizes are pure host arithmetic; r = 0 (plain copy) needs none.
    handle.vidtldr_saliency_workspace_size.restype = ctypes.c_size_t
    handle.vidtldr_merge_workspace_size.restype = ctypes.c_size_t
    assert handle.vidtldr_saliency_workspace_size(8, 12, 2352, 64) > 0
    assert handle.vidtldr_merge_workspace_size(8, 2352, 768, 600) > 0
    assert handle.vidtldr_merge_workspace_size(8, 2352, 768, 0) == 0


def test_missing_library_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugin_build.ENV_PLUGIN_DIR, str(tmp_path))
    with pytest.raises(VidTLDRError, match="build-plugins"):
        plugin_build.find_kernel_library()
    with pytest.raises(VidTLDRError, match="TENSORRT_ROOT"):
        plugin_build.find_plugin_library()


def test_env_dir_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / plugin_build.library_filename("vidtldr_kernels")
    fake.write_bytes(b"")
    monkeypatch.setenv(plugin_build.ENV_PLUGIN_DIR, str(tmp_path))
    assert plugin_build.find_kernel_library() == fake.resolve()
    # An explicit path wins over the environment.
    with pytest.raises(VidTLDRError):
        plugin_build.find_kernel_library(tmp_path / "elsewhere")


def test_build_rejects_a_folder_without_cmakelists(tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    with pytest.raises(VidTLDRError, match="CMakeLists.txt"):
        plugin_build.build_plugins(source_dir=tmp_path, build_dir=tmp_path / "b")


@needs_toolchain
def test_cmake_failure_carries_its_output(tmp_path: Path) -> None:
    (tmp_path / "CMakeLists.txt").write_text(
        'cmake_minimum_required(VERSION 3.18)\nmessage(FATAL_ERROR "boom-42")\n'
    )
    with pytest.raises(VidTLDRError, match="boom-42"):
        plugin_build.build_plugins(source_dir=tmp_path, build_dir=tmp_path / "b")
