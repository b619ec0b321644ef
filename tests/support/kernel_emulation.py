"""The CUDA kernels' own source, built for the CPU emulation in tests/cuda_emulator and bound with ctypes.

plugins/kernels/vidtldr_kernels.cu is compiled by the host C++ compiler against stand-in CUDA
headers (tests/cuda_emulator/include); the only rewrite is the launch syntax, `k<<<g, b, s, st>>>(a)`
becoming `::emu::launch(g, b, s, st)(k, a)`. The result exports the same C ABI as the real
libvidtldr_kernels, with host pointers for device pointers, so the GPU tests' checks run here on
CPU tensors. It checks the kernels' algorithm (indexing, tiling, splits, barriers, tie rules), not
the hardware: see the header for what the emulation leaves out.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

import torch

from vidtldr_deploy.runtime import kernels as kernel_binding

ROOT = Path(__file__).resolve().parents[2]
KERNEL_SOURCE = ROOT / "plugins" / "kernels" / "vidtldr_kernels.cu"
EMULATOR_DIR = Path(__file__).resolve().parent / "cuda_emulator"

# name, optional template arguments, <<<config>>>, then the opening parenthesis of the arguments.
_LAUNCH = re.compile(r"(\b[A-Za-z_]\w*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(", re.S)

_DTYPES = {torch.float32: 0, torch.float16: 1}


def translate_launches(source: str) -> str:
    """Rewrite every `kernel<<<config>>>(args)` as `::emu::launch(config)(kernel, args)`."""
    expected = source.count("<<<")
    translated, count = _LAUNCH.subn(r"::emu::launch(\2)(\1, ", source)
    if count != expected or "<<<" in translated:
        raise ValueError(
            f"translated {count} of {expected} kernel launches; extend the launch pattern"
        )
    return translated


def host_compiler() -> str | None:
    """A C++ compiler that has _Float16 (the emulated __half), or None."""
    for name in ("g++", "clang++", "c++"):
        path = shutil.which(name)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "-std=c++17", "-x", "c++", "-fsyntax-only", "-"],
            input="_Float16 h = static_cast<_Float16>(1.0f);\n",
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return path
    return None


def _translated_kernels(out_dir: Path) -> Path:
    """The kernel source with its launches rewritten, as out_dir/vidtldr_kernels_emulated.cpp."""
    out_dir.mkdir(parents=True, exist_ok=True)
    translated = out_dir / "vidtldr_kernels_emulated.cpp"
    # #line keeps compiler messages pointing at the real .cu file.
    translated.write_text(
        f'#line 1 "{KERNEL_SOURCE}"\n' + translate_launches(KERNEL_SOURCE.read_text())
    )
    return translated


def _compile(
    compiler: str,
    sources: list[Path],
    output: Path,
    include_dirs: list[Path],
    extra: list[str],
    what: str,
) -> Path:
    """One g++ / clang++ run over the emulated kernels plus `sources`; raises with the compiler's output."""
    command = [
        compiler, "-std=c++17", "-O2", *extra,
        "-fno-strict-aliasing",  # the kernels reinterpret shared-memory bytes, as CUDA allows
        "-ffp-contract=off",
        "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas", "-Wno-sign-compare",
        *(arg for d in [EMULATOR_DIR / "include", KERNEL_SOURCE.parent, *include_dirs] for arg in ("-I", str(d))),
        *(str(src) for src in [*sources, _translated_kernels(output.parent), EMULATOR_DIR / "emu_cuda.cpp"]),
        "-o", str(output),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} build failed:\n{' '.join(command)}\n{result.stderr[-6000:]}")
    return output


def build(out_dir: Path, compiler: str) -> Path:
    """Compile the kernels with the emulator into out_dir/libvidtldr_kernels_emulated.so."""
    return _compile(
        compiler,
        [],
        out_dir / "libvidtldr_kernels_emulated.so",
        [],
        ["-fPIC", "-shared"],
        "emulated kernel",
    )


def find_tensorrt_include() -> Path | None:
    """The folder holding TensorRT's NvInfer.h: $TENSORRT_ROOT/include or the system paths."""
    candidates = []
    if os.environ.get("TENSORRT_ROOT"):
        candidates.append(Path(os.environ["TENSORRT_ROOT"]) / "include")
    candidates += [
        Path("/usr/include/x86_64-linux-gnu"),
        Path("/usr/include/aarch64-linux-gnu"),
        Path("/usr/include"),
    ]
    return next((c for c in candidates if (c / "NvInfer.h").is_file()), None)


def build_plugin_harness(out_dir: Path, compiler: str, tensorrt_include: Path) -> Path:
    """Compile tests/cuda_emulator/plugin_harness.cpp with plugins/src and the emulated kernels."""
    plugin_dir = ROOT / "plugins" / "src"
    sources = [EMULATOR_DIR / "plugin_harness.cpp"] + [
        plugin_dir / name
        for name in ("saliency_plugin.cpp", "merge_plugin.cpp", "plugin_common.cpp")
    ]
    return _compile(
        compiler,
        sources,
        out_dir / "plugin_harness",
        [plugin_dir, tensorrt_include],
        [],
        "plugin harness",
    )


class EmulatedKernels:
    """saliency / merge on CPU tensors through the emulated library (the contract of backends.kernels)."""

    device = "cpu"  # where its inputs live

    def __init__(self, library: Path) -> None:
        self.lib = kernel_binding._declare(ctypes.CDLL(str(library)))
        self.lib.emu_configure.argtypes = [ctypes.c_ulonglong, ctypes.c_int]
        self.lib.emu_configure.restype = None
        self.lib.emu_last_failure.argtypes = []
        self.lib.emu_last_failure.restype = ctypes.c_char_p

    def configure(self, seed: int = 1, sm_count: int = 4) -> None:
        """Seed of the thread order at barriers; SM count seen by the kernels' split heuristics."""
        self.lib.emu_configure(seed, sm_count)

    def _check(self, status: int, op: str) -> None:
        if status != 0:
            detail = self.lib.emu_last_failure().decode()
            message = self.lib.vidtldr_error_string(status).decode()
            raise RuntimeError(
                f"emulated {op} failed: {message} (code {status}); emulator: {detail or 'no detail'}"
            )

    def saliency(self, q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
        B, H, N, D = q.shape
        q, k = q.contiguous(), k.contiguous()
        score = torch.full((B, N), float("nan"))
        workspace = torch.empty(
            int(self.lib.vidtldr_saliency_workspace_size(B, H, N, D)), dtype=torch.uint8
        )
        status = self.lib.vidtldr_saliency(
            q.data_ptr(), k.data_ptr(), score.data_ptr(), B, H, N, D, float(scale), _DTYPES[q.dtype],
            workspace.data_ptr(), None,
        )  # fmt: skip
        self._check(status, "saliency")
        return score

    def merge(
        self, x: torch.Tensor, size: torch.Tensor | None, score: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, C = x.shape
        x = x.contiguous()
        size = None if size is None else size.float().contiguous()
        score = score.float().contiguous()
        # NaN-filled outputs: a row the kernels forget to write cannot pass for a result.
        x_out = torch.full((B, N - r, C), float("nan"), dtype=x.dtype)
        size_out = torch.full((B, N - r), float("nan"))
        workspace = torch.empty(
            max(1, int(self.lib.vidtldr_merge_workspace_size(B, N, C, r))), dtype=torch.uint8
        )
        status = self.lib.vidtldr_merge(
            x.data_ptr(), None if size is None else size.data_ptr(), score.data_ptr(), x_out.data_ptr(),
            size_out.data_ptr(), B, N, C, r, _DTYPES[x.dtype], workspace.data_ptr(), None,
        )  # fmt: skip
        self._check(status, "merge")
        return x_out, size_out
