"""Triton Python-backend model: encoded videos (TYPE_STRING) -> the engine's `video` tensor.

`vidtldr triton --ensemble` copies this file to `repo/NAME_preprocess/1/model.py`. It runs inside
tritonserver's Python backend, whose Python needs vidtldr-deploy (no dependencies: no torch),
numpy, av and pillow (the repository README lists them). Each request carries B encoded clips (B:
the engine's static batch, or 1..max_batch_size for a dynamic-batch engine, whose requests the
dynamic batcher groups); the response is one float tensor (B, 3, T, H, W). Everything the
model needs comes from its config.pbtxt `parameters`: the input shape and the whole clip recipe
(vidtldr.recipe: sampling, size, crop, mean/std), so this file is the same for every model.

Client bytes are untrusted: a request over `vidtldr.max_request_bytes` (default 256 MiB) is
refused before decoding, and each clip is decoded under the same frame-size and decoded-bytes
limits as a file on the command line (VIDTLDR_MAX_FRAME_PIXELS, VIDTLDR_MAX_CLIP_MIB in the
server's environment). A refused request gets an error response; the model stays up.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by tritonserver's Python backend

PARAM_PREFIX = "vidtldr."
DEFAULT_MAX_REQUEST_BYTES = 256 << 20


def _load_decoder(recipe_json: str):
    """bytes -> (3, T, H, W) array by vidtldr_deploy.clips.decode_clip with the config's recipe."""
    from vidtldr_deploy.clips import ClipRecipe, decode_clip

    recipe = ClipRecipe.from_json(recipe_json)
    return lambda data, frames: decode_clip(data, recipe, frames)


def _parameters(model_config: dict) -> dict[str, str]:
    params = model_config.get("parameters", {})
    return {
        k.removeprefix(PARAM_PREFIX): v.get("string_value", "")
        for k, v in params.items()
        if k.startswith(PARAM_PREFIX)
    }


def clip_bytes(item) -> bytes:
    """One element of a TYPE_STRING tensor: numpy gives bytes (or str for JSON clients)."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("latin-1")
    raise TypeError(f"expected encoded video bytes, got {type(item).__name__}")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = _parameters(config)
        self.input_name = params.get("bytes_input", "video_bytes")
        self.shape = tuple(json.loads(params["input_shape"]))  # (B, 3, T, H, W)
        (output,) = config["output"]
        self.output_name = output["name"]
        self.dtype = pb_utils.triton_string_to_numpy(output["data_type"])
        self.max_request_bytes = int(params.get("max_request_bytes") or DEFAULT_MAX_REQUEST_BYTES)
        self.decode = _load_decoder(params["recipe"])

    def _batch(self, encoded) -> np.ndarray:
        items = list(np.asarray(encoded, dtype=object).reshape(-1))
        batch, _, frames, height, width = self.shape  # batch -1: a dynamic batch, any count
        if batch > 0 and len(items) != batch:
            raise ValueError(
                f"this engine takes exactly {batch} clips per request, got {len(items)}: "
                "pad the request (repeat a clip) or export with another --batch"
            )
        encoded = [clip_bytes(item) for item in items]
        size = sum(len(data) for data in encoded)
        if size > self.max_request_bytes:
            raise ValueError(
                f"the request holds {size:,} bytes of video, over the limit of "
                f"{self.max_request_bytes:,} (vidtldr.max_request_bytes in config.pbtxt)"
            )
        clips = []
        for i, data in enumerate(encoded):
            clip = np.asarray(self.decode(data, frames))
            if clip.shape != (3, frames, height, width):
                raise ValueError(
                    f"clip {i} decoded to {list(clip.shape)}, the engine takes "
                    f"{[3, frames, height, width]}"
                )
            clips.append(clip)
        return np.stack(clips).astype(self.dtype, copy=False)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                encoded = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
                video = self._batch(encoded)
                out = pb_utils.Tensor(self.output_name, video)
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except Exception as err:  # one bad clip fails its request, not the model
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"preprocess: {err}")
                    )
                )
        return responses

    def finalize(self):
        self.decode = None
