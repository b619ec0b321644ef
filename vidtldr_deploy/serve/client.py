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

DEFAULT_URL = "localhost:8000"


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
    """.npy: one batch; .npz: one batch per array (in the file's order)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.suffix == ".npy":
        return [np.load(path, allow_pickle=False)]
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[k] for k in data.files]
        if not arrays:
            raise InputError(f"{path} holds no arrays")
        return arrays
    raise InputError(f"{path}: expected clips as .npy or .npz")


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
    payload = [v if isinstance(v, bytes) else Path(v).read_bytes() for v in videos]
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


def infer(
    model: str,
    requests: Sequence[list],
    url: str = DEFAULT_URL,
    repeat: int = 1,
    timeout_s: float = 60.0,
) -> ClientResult:
    """Send each request (a list of InferInput) `repeat` times; keep the last outputs."""
    httpclient, _ = _http()
    if repeat < 1:
        raise InputError("--repeat must be >= 1")
    try:
        client = httpclient.InferenceServerClient(
            url=url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
        try:
            meta = client.get_model_metadata(model)
        except Exception as err:  # connection refused, an unknown model: the URL or name is wrong
            raise InputError(f"Triton at {url}, model {model!r}: {err}") from None
        names = [o["name"] for o in meta.get("outputs", [])]
        outputs: dict[str, np.ndarray] = {}
        latencies = []
        for inputs in requests:
            for _ in range(repeat):
                t0 = time.perf_counter()
                result = client.infer(model, inputs)
                latencies.append((time.perf_counter() - t0) * 1e3)
            outputs = {n: result.as_numpy(n) for n in names}
        client.close()
    except VidTLDRError:
        raise
    except Exception as err:  # the server failed running the model: name it
        raise RuntimeFailure(f"Triton at {url}, model {model!r}: {err}") from None
    return ClientResult(outputs, tuple(latencies))
