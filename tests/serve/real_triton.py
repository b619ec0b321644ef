"""A real tritonserver for the tests and benchmarks, from the `nvidia-pytriton` wheel.

That wheel ships tritonserver 2.51 (`pytriton/tritonserver/bin/tritonserver`), its libraries
(`nvidia_pytriton.libs`) and the Python backend with one stub per Python version; no onnxruntime
or tensorrt backend. Two folders under VIDTLDR_TRITON_HOME (default ~/.cache/vidtldr-triton):

- server/: `pip install --no-deps --target`: the wheel's metadata pins numpy<2, which must not
  reach the project's environment;
- stub-site/: what the Python backend's stub imports (numpy<2: the 2.51 backend crashes reading a
  BYTES input with numpy 2; av and pillow decode; onnxruntime for the tests' stand-in model).

The stub embeds libpython and takes its prefix from the first `python` on PATH, ignoring
PYTHONPATH. Each server gets a fresh venv (no pip, made in milliseconds) from this interpreter,
first on PATH, whose `.pth` adds stub-site and the checkout under test; this interpreter's
libpython goes on LD_LIBRARY_PATH so the stub runs the same Python the venv was made from.

`python tests/serve/real_triton.py install` installs both folders (.ci/run calls it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

PYTRITON = "nvidia-pytriton==0.7.0"
SERVER_VERSION = "2.51.0"
STUB_PACKAGES = ("numpy<2", "av", "pillow", "onnxruntime")
CHECKOUT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).with_name("triton_ort_standin.py")
INSTALL_HINT = "python tests/serve/real_triton.py install"


def home() -> Path:
    return Path(os.environ.get("VIDTLDR_TRITON_HOME") or Path.home() / ".cache" / "vidtldr-triton")


def _server_root(base: Path) -> Path:
    return base / "server" / "pytriton" / "tritonserver"


def _pip_target(target: Path, packages: tuple[str, ...], no_deps: bool) -> None:
    """Into a temporary folder, renamed into place: an interrupted install leaves nothing."""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    cmd += ["--no-deps"] * no_deps + ["--target", str(tmp), *packages]
    subprocess.run(cmd, check=True)
    shutil.rmtree(target, ignore_errors=True)  # an incomplete folder from an older layout
    tmp.rename(target)


def install(base: Path | None = None) -> Path:
    base = base or home()
    base.mkdir(parents=True, exist_ok=True)
    if not (_server_root(base) / "bin" / "tritonserver").is_file():
        _pip_target(base / "server", (PYTRITON,), no_deps=True)
    if not (base / "stub-site" / "numpy").is_dir():
        _pip_target(base / "stub-site", STUB_PACKAGES, no_deps=False)
    return base


def missing(base: Path | None = None) -> str | None:
    """Why no server can start here (None: everything is in place)."""
    base = base or home()
    if not (_server_root(base) / "bin" / "tritonserver").is_file():
        return f"no tritonserver under {base}/server: run `{INSTALL_HINT}`"
    if not (base / "stub-site" / "numpy").is_dir():
        return f"no Python-backend packages under {base}/stub-site: run `{INSTALL_HINT}`"
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return (
            f"{sys.executable} has no libpython (built without --enable-shared): the stub needs it"
        )
    stub = _stub_source(base)
    if not stub.is_file():
        return f"{PYTRITON} has no Python-backend stub for Python {sys.version_info[:2]}"
    return None


def _stub_source(base: Path) -> Path:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return _server_root(base) / "python_backend_stubs" / version / "triton_python_backend_stub"


def use_ort_standin(repo: Path, name: str) -> None:
    """Serve repo/NAME (an onnxruntime_onnx model) through the Python-backend ONNX Runtime stand-in:
    only platform -> backend changes in its config; model.onnx stays where it was written."""
    from vidtldr_deploy.serve.triton_config import parse_pbtxt, to_pbtxt

    path = repo / name / "config.pbtxt"
    config = parse_pbtxt(path.read_text())
    config.ClearField("platform")
    config.ClearField("default_model_filename")
    config.backend = "python"
    path.write_text(to_pbtxt(config))
    (repo / name / "1" / "model.py").write_text(STANDIN.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(base: Path, workdir: Path) -> tuple[Path, dict[str, str]]:
    """The backend folder (python backend + this Python's stub) and the server's environment."""
    server = _server_root(base)
    backend = workdir / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (backend / name).symlink_to(server / "backends" / "python" / name)
    (backend / "triton_python_backend_stub").symlink_to(_stub_source(base))
    venv = workdir / "stub-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "vidtldr_stub.pth").write_text(f"{base / 'stub-site'}\n{CHECKOUT}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    libs = [str(base / "server" / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    return workdir / "backends", env


class TritonServer:
    """One tritonserver on 127.0.0.1 over `repositories`, every model loaded at start
    (explicit model control, so a model that fails to load is reported, not fatal)."""

    def __init__(self, repositories: list[Path], workdir: Path, base: Path | None = None):
        self.base = base or home()
        self.repositories = repositories
        self.workdir = workdir
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.log = workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None
        self.startup_s = float("nan")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 120.0) -> TritonServer:
        backends, env = _prepare(self.base, self.workdir)
        cmd = [str(_server_root(self.base) / "bin" / "tritonserver")]
        cmd += [f"--model-repository={r}" for r in self.repositories]
        cmd += [
            f"--backend-directory={backends}", "--strict-model-config=true",
            "--model-control-mode=explicit", "--load-model=*", "--exit-on-error=false",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}", "--allow-metrics=false",
        ]  # fmt: skip
        t0 = time.perf_counter()
        with open(self.log, "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            while not self._live():
                if self.process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited ({self.process.returncode})")
                if time.perf_counter() - t0 > timeout_s:
                    raise RuntimeError(f"tritonserver not live after {timeout_s:.0f} s")
                time.sleep(0.1)
        except BaseException as err:
            self.stop()
            raise RuntimeError(f"{err}; its log ends:\n{self.log_tail()}") from None
        self.startup_s = time.perf_counter() - t0
        return self

    def _live(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/live", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """SIGTERM to the process group (the server and its Python-backend stubs), then KILL."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def request(self, path: str, method: str = "GET", body: bytes | None = None):
        req = urllib.request.Request(f"http://{self.url}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            return json.loads(err.read() or b"null")

    def models(self) -> dict[str, dict]:
        """Model name -> {state, reason} from the repository index."""
        return {m["name"]: m for m in self.request("/v2/repository/index", "POST", b"{}")}

    def statistics(self, model: str) -> dict:
        return self.request(f"/v2/models/{model}/stats")["model_stats"][0]


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit(f"usage: {INSTALL_HINT}")
    print(f"installed under {install()}")
