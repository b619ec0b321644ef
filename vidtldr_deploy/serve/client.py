"""A small Triton HTTP client: clips (npz/npy arrays) or encoded videos in, outputs and latency out.

Built on `tritonclient.http` (the `triton` extra). Request construction is separate from sending
so it can be checked without a server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidtldr_deploy.errors import EnvironmentProblem, InputError, RuntimeFailure, VidTLDRError
from vidtldr_deploy.files import check_input_file

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


def video_inputs(videos: Sequence[bytes | str | Path], input_name: str = "video_bytes") -> list:
    """One TYPE_STRING (BYTES) input holding the encoded files, for a `*_ensemble` model."""
    payload = [
        v if isinstance(v, bytes) else check_input_file(v, "--video").read_bytes() for v in videos
    ]
    return tensor_inputs({input_name: np.array(payload, dtype=np.object_)})


@dataclass(frozen=True)
class ClientResult:
    outputs: dict[str, np.ndarray]
    latencies_ms: tuple[float, ...]

    def summary(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_ms)
        return {
            "requests": float(lat.size),
            "mean_ms": float(lat.mean()),
            "p50_ms": float(np.percentile(lat, 50)),
            "p90_ms": float(np.percentile(lat, 90)),
            "min_ms": float(lat.min()),
            "max_ms": float(lat.max()),
        }


def _deadline(seconds: float):
    """A total deadline on one call: tritonclient's own timeouts bound each socket read, so a
    server trickling a byte at a time would keep a request alive forever. tritonclient.http runs
    on gevent, whose Timeout interrupts the call wherever it waits."""
    import gevent

    return gevent.Timeout(seconds)


def infer(
    model: str,
    requests: Sequence[list],
    url: str = DEFAULT_URL,
    repeat: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ClientResult:
    """Send each request (a list of InferInput) `repeat` times; keep the last outputs. Each call
    to the server (metadata, every request) must finish within `timeout_s` seconds in total."""
    import gevent

    httpclient, _ = _http()
    if repeat < 1:
        raise InputError("--repeat must be >= 1")
    if not 0 < timeout_s < float("inf"):
        raise InputError(f"--timeout must be a positive number of seconds, got {timeout_s}")
    client = None
    try:
        client = httpclient.InferenceServerClient(
            url=url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            with _deadline(timeout_s):
                meta = client.get_model_metadata(model)
        except gevent.Timeout:
            raise
        except Exception as err:  # connection refused, an unknown model: the URL or name is wrong
            raise InputError(f"Triton at {url}, model {model!r}: {err}") from None
        names = [o["name"] for o in meta.get("outputs", [])]
        outputs: dict[str, np.ndarray] = {}
        latencies = []
        for inputs in requests:
            for _ in range(repeat):
                t0 = time.perf_counter()
                with _deadline(timeout_s):
                    result = client.infer(model, inputs)
                latencies.append((time.perf_counter() - t0) * 1e3)
            outputs = {n: result.as_numpy(n) for n in names}
    except VidTLDRError:
        raise
    except gevent.Timeout:  # the server (or the network to it) does not answer: not a bug here
        raise EnvironmentProblem(
            f"Triton at {url}, model {model!r}: no complete answer within {timeout_s:g} s: check "
            "the server, or raise --timeout"
        ) from None
    except Exception as err:  # the server failed running the model: name it
        raise RuntimeFailure(f"Triton at {url}, model {model!r}: {err}") from None
    finally:
        if client is not None:
            client.close()
    return ClientResult(outputs, tuple(latencies))
