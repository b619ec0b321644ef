"""A small Triton HTTP client: clips (npz/npy arrays) or encoded videos in, outputs and latency out.

Built on `tritonclient.http` (the `triton` extra). Request construction is separate from sending
so it can be checked without a server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure
from vidtldr_deploy.files import check_input_file
from vidtldr_deploy.serve.triton_config import BYTES_INPUT

DEFAULT_URL = "localhost:8000"
DEFAULT_TIMEOUT_S = 60.0


def _http():
    try:
        import tritonclient.http as httpclient
        from tritonclient.utils import np_to_triton_dtype
    except ImportError as err:
        raise EnvironmentProblem(
            "the Triton client needs tritonclient: pip install 'vidtldr-deploy[triton]'"
        ) from err
    return httpclient, np_to_triton_dtype


def load_clips(path: str | Path) -> list[np.ndarray]:
    """.npy: one batch; .npz: one batch per array (in the file's order). Headers are read first:
    object arrays and arrays declaring more than the memory limit are refused before loading."""
    from vidtldr_deploy.clips.sources import ARRAY_SUFFIXES, expand_paths, read_array

    path = check_input_file(path, "--inputs")
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise InputError(f"{path}: expected clips as .npy or .npz")
    return [read_array(source) for source in expand_paths([path])]


def tensor_inputs(arrays: Mapping[str, np.ndarray], binary: bool = True) -> list:
    """InferInput objects for named arrays, with the Triton dtype of each array."""
    httpclient, np_to_triton_dtype = _http()
    inputs = []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        item = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        item.set_data_from_numpy(array, binary_data=binary)
        inputs.append(item)
    return inputs


def video_inputs(
    videos: Sequence[bytes | str | Path], input_name: str = BYTES_INPUT, batched: bool = False
) -> list:
    """One TYPE_STRING (BYTES) input holding the encoded files, for a `*_ensemble` model: shape
    [n], or [n, 1] for an ensemble that batches (its input is one clip per batch entry)."""
    payload = np.array(
        [
            v if isinstance(v, bytes) else check_input_file(v, "--video").read_bytes()
            for v in videos
        ],
        dtype=np.object_,
    )
    return tensor_inputs({input_name: payload.reshape(-1, 1) if batched else payload})


def model_metadata(
    model: str, url: str = DEFAULT_URL, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict:
    """The server's metadata of `model` (inputs and outputs with their shapes), within
    `timeout_s` seconds in total."""
    import gevent

    httpclient, _ = _http()
    check_timeout(timeout_s)
    try:
        client = httpclient.InferenceServerClient(
            url=url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            with _deadline(timeout_s):
                return client.get_model_metadata(model)
        finally:
            client.close()
    except gevent.Timeout:
        raise _timed_out(url, model, timeout_s) from None
    except Exception as err:  # connection refused, an unknown model: the URL or name is wrong
        raise InputError(f"Triton at {url}, model {model!r}: {err}") from None


def batches_inputs(metadata: dict, input_name: str) -> bool:
    """Whether the model's `input_name` takes a leading batch dimension (max_batch_size > 0)."""
    shapes = [i["shape"] for i in metadata.get("inputs", []) if i["name"] == input_name]
    return bool(shapes) and len(shapes[0]) == 2 and shapes[0][0] == -1


@dataclass(frozen=True)
class ClientResult:
    """Every answered request's latency; outputs of each distinct request, batches concatenated
    in request order (one response each: repeats of a request answer the same)."""

    outputs: dict[str, np.ndarray]
    latencies_ms: tuple[float, ...]
    wall_s: float = float("nan")  # from the first request sent to the last answer
    concurrency: int = 1

    def summary(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_ms)
        return {
            "requests": float(lat.size),
            "concurrency": float(self.concurrency),
            "wall_s": self.wall_s,
            "throughput_rps": lat.size / self.wall_s if self.wall_s > 0 else float("nan"),
            "mean_ms": float(lat.mean()),
            "p50_ms": float(np.percentile(lat, 50)),
            "p90_ms": float(np.percentile(lat, 90)),
            "p99_ms": float(np.percentile(lat, 99)),
            "min_ms": float(lat.min()),
            "max_ms": float(lat.max()),
        }


def _deadline(seconds: float):
    """A total deadline on one call: tritonclient's own timeouts bound each socket read, so a
    server trickling a byte at a time would keep a request alive forever. tritonclient.http runs
    on gevent, whose Timeout interrupts the call wherever it waits."""
    import gevent

    return gevent.Timeout(seconds)


def check_timeout(timeout_s: float) -> float:
    if not 0 < timeout_s < float("inf"):
        raise InputError(f"--timeout must be a positive number of seconds, got {timeout_s}")
    return timeout_s


def _timed_out(url: str, model: str, timeout_s: float) -> EnvironmentProblem:
    # the server (or the network to it) does not answer in time: not a bug here
    return EnvironmentProblem(
        f"Triton at {url}, model {model!r}: no complete answer within {timeout_s:g} s: check the "
        "server, or raise --timeout"
    )


@dataclass(frozen=True)
class LoadPlan:
    """How many requests to send: each request `repeat` times in order (the default), or, bounded
    by `total` requests and/or `duration_s`, the requests in turn from `concurrency` workers."""

    repeat: int = 1
    concurrency: int = 1
    duration_s: float | None = None
    total: int | None = None

    def check(self) -> LoadPlan:
        if self.repeat < 1:
            raise InputError("--repeat must be >= 1")
        if self.concurrency < 1:
            raise InputError("--concurrency must be >= 1")
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise InputError(f"--duration must be in (0, {MAX_DURATION_S:.0f}] seconds")
        if self.total is not None and self.total < 1:
            raise InputError("--requests must be >= 1")
        if self.repeat > 1 and (self.duration_s is not None or self.total is not None):
            raise InputError("--repeat counts per request; with --duration/--requests leave it out")
        return self

    def count(self, distinct: int) -> int | None:
        """Requests to send in all (None: until duration_s is over)."""
        if self.total is not None:
            return self.total
        return None if self.duration_s is not None else distinct * self.repeat

    def which(self, k: int, distinct: int) -> int:
        """The request the k-th send carries."""
        bounded = self.duration_s is not None or self.total is not None
        return k % distinct if bounded else k // self.repeat


MAX_DURATION_S = 3600.0


class _Sends:
    """The shared counter the workers draw send numbers from, until the plan is spent."""

    def __init__(self, count: int | None, deadline: float | None):
        self.count, self.deadline = count, deadline
        self.next = 0
        self.lock = threading.Lock()
        self.failure: Exception | None = None

    def take(self) -> int | None:
        with self.lock:
            over = self.count is not None and self.next >= self.count
            late = self.deadline is not None and time.perf_counter() >= self.deadline
            if over or late or self.failure is not None:
                return None
            self.next += 1
            return self.next - 1


def infer(
    model: str,
    requests: Sequence[list],
    url: str = DEFAULT_URL,
    repeat: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    plan: LoadPlan | None = None,
) -> ClientResult:
    """Send the requests (each a list of InferInput) as `plan` says (default: each `repeat` times
    in order, one at a time); any failed request stops every worker and is raised. Each call to
    the server must finish within `timeout_s` seconds in total."""
    import gevent

    httpclient, _ = _http()
    check_timeout(timeout_s)
    plan = (plan or LoadPlan(repeat=repeat)).check()
    if not requests:
        raise InputError("no requests to send")
    names = [o["name"] for o in model_metadata(model, url, timeout_s).get("outputs", [])]
    start = time.perf_counter()
    deadline = None if plan.duration_s is None else start + plan.duration_s
    sends = _Sends(plan.count(len(requests)), deadline)
    latencies: list[float] = []
    answers: dict[int, dict[str, np.ndarray]] = {}

    def worker() -> None:
        # One connection per worker: a tritonclient.http client is not shared between threads.
        own = httpclient.InferenceServerClient(
            url=url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            while (k := sends.take()) is not None:
                i = plan.which(k, len(requests))
                t0 = time.perf_counter()
                with _deadline(timeout_s):  # gevent's hub is per thread: one per worker
                    result = own.infer(model, requests[i])
                elapsed = (time.perf_counter() - t0) * 1e3
                with sends.lock:
                    latencies.append(elapsed)
                    if i not in answers:
                        answers[i] = {n: result.as_numpy(n) for n in names}
        except (Exception, gevent.Timeout) as err:  # the first failure ends every worker's run
            with sends.lock:
                sends.failure = sends.failure or err
        finally:
            own.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if isinstance(sends.failure, gevent.Timeout):
        raise _timed_out(url, model, timeout_s)
    if sends.failure is not None:  # the server failed running the model: name it
        raise RuntimeFailure(f"Triton at {url}, model {model!r}: {sends.failure}")
    if not latencies:
        raise RuntimeFailure(f"Triton at {url}, model {model!r}: no request was answered")
    done = [answers[i] for i in sorted(answers)]
    outputs = {n: np.concatenate([a[n] for a in done]) for n in names}
    return ClientResult(outputs, tuple(latencies), wall, plan.concurrency)


def load_report(result: ClientResult, model: str, url: str, inputs: str) -> dict:
    """The report of a run (JSON is the source of truth; report.markdown renders it)."""
    s = result.summary()
    return {
        "kind": "triton-client",
        "target": f"{model} at {url}",
        "inputs": inputs,
        "latency": s,
        "headers": ["requests", "concurrency", "seconds", "req/s", "mean ms", "p50 ms",
                    "p90 ms", "p99 ms", "max ms"],
        "rows": [[f"{s['requests']:.0f}", f"{s['concurrency']:.0f}", f"{s['wall_s']:.2f}",
                  f"{s['throughput_rps']:.1f}", f"{s['mean_ms']:.2f}", f"{s['p50_ms']:.2f}",
                  f"{s['p90_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['max_ms']:.2f}"]],
    }  # fmt: skip
