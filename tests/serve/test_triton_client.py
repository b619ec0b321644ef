"""The Triton client: request construction with tritonclient's InferInput objects, and one round
trip against a tiny fake KServe v2 HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.serve import client

pytest.importorskip("tritonclient.http")


def test_tensor_inputs_carry_name_shape_dtype_and_data():
    clip = np.arange(2 * 3 * 4 * 8 * 8, dtype=np.float32).reshape(2, 3, 4, 8, 8)
    (item,) = client.tensor_inputs({"video": clip})
    assert item.name() == "video" and item.shape() == [2, 3, 4, 8, 8] and item.datatype() == "FP32"
    assert bytes(item._get_binary_data()) == clip.tobytes()
    (as_json,) = client.tensor_inputs({"video": clip}, binary=False)
    assert as_json._get_tensor()["data"][:3] == [0.0, 1.0, 2.0]


def test_video_inputs_are_bytes(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (item,) = client.video_inputs([tmp_path / "a.mp4", b"raw"])
    assert item.name() == "video_bytes" and item.datatype() == "BYTES" and item.shape() == [2]
    raw = bytes(item._get_binary_data())  # BYTES: 4-byte little-endian length, then the bytes
    assert (
        raw
        == len(b"\x00\x00\x00\x18ftypmp42").to_bytes(4, "little")
        + b"\x00\x00\x00\x18ftypmp42"
        + (3).to_bytes(4, "little")
        + b"raw"
    )


def test_load_clips(tmp_path):
    a, b = np.zeros((1, 3, 4, 8, 8), np.float32), np.ones((1, 3, 4, 8, 8), np.float32)
    np.savez(tmp_path / "clips.npz", first=a, second=b)
    np.save(tmp_path / "one.npy", a)
    assert [x.max() for x in client.load_clips(tmp_path / "clips.npz")] == [0, 1]
    assert len(client.load_clips(tmp_path / "one.npy")) == 1
    with pytest.raises(VidTLDRError, match="expected clips"):
        (tmp_path / "clips.txt").write_text("x")
        client.load_clips(tmp_path / "clips.txt")


class _FakeTriton(BaseHTTPRequestHandler):
    """Just enough of the KServe v2 protocol: model metadata and one infer that sums the input."""

    seen: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _reply(self, body: dict, code: int = 200):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v2/models/umt":
            self._reply(
                {
                    "name": "umt",
                    "outputs": [{"name": "pooled", "datatype": "FP32", "shape": [2, 4]}],
                }
            )
        else:
            self._reply({"error": f"no model at {self.path}"}, 400)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        header_len = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        header, binary = json.loads(body[:header_len]), body[header_len:]
        (inp,) = header["inputs"]
        video = np.frombuffer(binary, dtype=np.float32).reshape(inp["shape"])
        type(self).seen.append((self.path, inp["name"], inp["datatype"], video.shape))
        pooled = np.repeat(video.reshape(video.shape[0], -1).sum(1, keepdims=True), 4, 1)
        self._reply({"model_name": "umt", "outputs": [
            {"name": "pooled", "datatype": "FP32", "shape": [2, 4],
             "data": pooled.reshape(-1).tolist()}
        ]})  # fmt: skip


@pytest.fixture
def fake_server():
    _FakeTriton.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeTriton)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_round_trip_against_a_fake_server(fake_server):
    clip = np.ones((2, 3, 4, 8, 8), np.float32)
    result = client.infer("umt", [client.tensor_inputs({"video": clip})], url=fake_server, repeat=3)
    np.testing.assert_array_equal(
        result.outputs["pooled"], np.full((2, 4), 3 * 4 * 8 * 8, np.float32)
    )
    assert len(result.latencies_ms) == 3 and result.summary()["requests"] == 3
    assert _FakeTriton.seen[0] == ("/v2/models/umt/infer", "video", "FP32", (2, 3, 4, 8, 8))


def test_client_command_prints_outputs_and_latency(cli, fake_server, tmp_path):
    np.savez(tmp_path / "clips.npz", a=np.ones((2, 3, 4, 8, 8), np.float32))
    r = cli("triton-client", "umt", "--inputs", tmp_path / "clips.npz", "-u", fake_server)
    assert r.exit_code == 0, r.output
    assert "pooled: shape [2, 4] float32" in r.output and "latency over 1 requests" in r.output


def test_server_errors_are_named(cli, fake_server, tmp_path):
    np.save(tmp_path / "clip.npy", np.ones((2, 3, 4, 8, 8), np.float32))
    r = cli("triton-client", "missing", "--inputs", tmp_path / "clip.npy", "-u", fake_server)
    assert r.exit_code == 2 and "model 'missing'" in r.output
    r = cli("triton-client", "umt", "-u", fake_server)
    assert r.exit_code == 2 and "either --inputs" in r.output
