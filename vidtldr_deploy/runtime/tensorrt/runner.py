"""TensorRT engine runner: checks the sidecar against this machine, loads the plugins the engine
was built with, runs inference with PyTorch CUDA tensors as device buffers. A dynamic-batch engine
(export --max-batch N) takes any batch 1..N: its buffers are sized for N once, and each call sets
the input shape and reads the leading part of each output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidtldr_deploy.errors import InputError, RuntimeFailure, VidTLDRError
from vidtldr_deploy.files import sha256_file
from vidtldr_deploy.runtime.base import Runner
from vidtldr_deploy.runtime.breakdown import Breakdown, from_named_times
from vidtldr_deploy.runtime.tensorrt import sidecar as sc
from vidtldr_deploy.runtime.tensorrt.build import dtype_name
from vidtldr_deploy.runtime.tensorrt.environment import (
    errors_tail,
    gpu_info,
    process_logger,
    require_tensorrt,
    torch_cuda,
)
from vidtldr_deploy.runtime.tensorrt.plugins import load_plugin_library, resolve_plugin_library


def _torch_dtype(trt, torch, dtype):
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "int8": torch.int8, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
             "uint8": torch.uint8}  # fmt: skip
    name = dtype_name(trt, dtype)
    if name not in table:
        raise InputError(f"engine I/O type {name} is not supported by the TensorRT runner")
    return table[name]


class TensorRTRunner(Runner):
    """Runs an engine built by `build_engine` after checking its sidecar against this machine.

    Device buffers are PyTorch CUDA tensors, allocated once (at the max batch of a dynamic one)."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, plugin_library: str | Path | None = None):
        self.engine_path = Path(engine_path)
        self.plugin_library = plugin_library
        self.engine = self.context = None

    def activate(self) -> None:
        """Check the sidecar against this machine, load the plugins, deserialize the engine and
        allocate its static buffers."""
        trt = require_tensorrt()
        torch = torch_cuda()
        if not self.engine_path.is_file():
            raise InputError(f"engine {self.engine_path} does not exist")
        self.sidecar = sc.read_sidecar(self.engine_path)
        plugin_path = self._checked_against_machine(trt)
        if plugin_path is not None:
            load_plugin_library(plugin_path)
        self._load_engine(trt)
        self._allocate_buffers(trt, torch)

    def _checked_against_machine(self, trt) -> Path | None:
        """The sidecar against this TensorRT, GPU and plugin library (every mismatch named);
        returns the plugin library to load, None when the engine has no plugin layers."""
        runtime: dict[str, Any] = {
            "tensorrt_version": trt.__version__,
            "engine_sha256": sha256_file(self.engine_path),
            **gpu_info(),
        }
        plugin_path: Path | None = None
        if self.sidecar.plugin_library_sha256:
            candidate = self.plugin_library
            if candidate is None and not os.environ.get("VIDTLDR_PLUGIN_DIR"):
                recorded = self.sidecar.plugin_library
                if recorded and Path(recorded).is_file():
                    candidate = recorded
            try:
                plugin_path = resolve_plugin_library(candidate)
            except VidTLDRError:
                if self.plugin_library is not None:
                    raise
                runtime["plugin_library"] = None
                runtime["plugin_library_sha256"] = None
            else:
                runtime["plugin_library"] = str(plugin_path)
                runtime["plugin_library_sha256"] = sha256_file(plugin_path)
        sc.require_sidecar_match(self.sidecar, runtime, self.engine_path)
        return plugin_path

    def _load_engine(self, trt) -> None:
        self._logger = process_logger(trt)
        messages = self._logger.messages
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeFailure(
                f"TensorRT {trt.__version__} could not load {self.engine_path}{errors_tail(messages)}"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise RuntimeFailure(
                f"could not create an execution context for {self.engine_path}{errors_tail(messages)}"
            )

    def _allocate_buffers(self, trt, torch) -> None:
        """One PyTorch CUDA tensor per engine I/O tensor, bound to the context; a dynamic batch
        is allocated at the max of the batch range the sidecar records."""
        self._torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.stream = torch.cuda.Stream(self.device)
        self.batch = self.sidecar.batch
        self.buffers: dict[str, Any] = {}
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = self._buffer_shape(name, tuple(self.engine.get_tensor_shape(name)))
            dtype = _torch_dtype(trt, torch, self.engine.get_tensor_dtype(name))
            buf = torch.empty(shape, dtype=dtype, device=self.device)
            self.buffers[name] = buf
            self.context.set_tensor_address(name, buf.data_ptr())
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_names.append(name)
            else:
                self.output_names.append(name)
        if len(self.input_names) != 1:
            raise InputError(
                f"{self.engine_path} has inputs {self.input_names}; expected one (video)"
            )
        self.input_name = self.input_names[0]
        self.input_shape = tuple(self.buffers[self.input_name].shape)
        self._last_shape = self.input_shape  # what layer_times runs before any run()
        if self.batch is not None:
            self._check_profile(self.input_name)

    def _buffer_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The engine's shape of a tensor, a dynamic batch taken at the recorded max."""
        dynamic = [i for i, d in enumerate(shape) if d < 0]
        if not dynamic:
            return shape
        if self.batch is None:
            raise InputError(
                f"{self.engine_path}: tensor {name} has a dynamic shape {shape} but the sidecar "
                "records no batch range: rebuild the engine with vidtldr export --max-batch N"
            )
        if dynamic != [0]:
            raise InputError(
                f"{self.engine_path}: tensor {name} has shape {shape}; only the batch of a "
                "vidtldr engine is dynamic: rebuild the engine"
            )
        return (self.batch.max, *shape[1:])

    def _check_profile(self, name: str) -> None:
        """The engine's own optimisation profile must be the batch range the sidecar records."""
        low, _, high = (tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
        rest = self.input_shape[1:]
        if low != (self.batch.min, *rest) or high != (self.batch.max, *rest):
            raise InputError(
                f"{self.engine_path}: the engine's batch profile ({low} .. {high}) is not the "
                f"range its sidecar records ({self.batch.to_dict()}): rebuild the engine"
            )

    def _check_input(self, shape: tuple[int, ...]) -> None:
        if self.batch is None:
            if shape != self.input_shape:
                raise InputError(
                    f"input shape {shape} does not match the engine's static input "
                    f"{self.input_shape}"
                )
            return
        if not shape or shape[1:] != self.input_shape[1:]:
            raise InputError(
                f"input shape {shape} does not match the engine's input (batch, "
                f"{', '.join(map(str, self.input_shape[1:]))})"
            )
        if not self.batch.min <= shape[0] <= self.batch.max:
            raise InputError(
                f"batch {shape[0]} is outside the engine's batch range "
                f"{self.batch.min}..{self.batch.max}: send at most {self.batch.max} clips per "
                "call, or rebuild the engine with a larger --max-batch"
            )

    def _set_batch(self, context, shape: tuple[int, ...]) -> None:
        """A dynamic engine's input shape for this call (a static one has only its own)."""
        if self.batch is not None and not context.set_input_shape(self.input_name, shape):
            raise RuntimeFailure(f"TensorRT refused the input shape {shape} for {self.engine_path}")

    def run(self, video: np.ndarray) -> dict[str, np.ndarray]:
        if self.context is None:
            raise self.inactive()
        torch = self._torch
        shape = tuple(video.shape)
        self._check_input(shape)
        self._set_batch(self.context, shape)
        self._last_shape = shape
        dst = self.buffers[self.input_name][: shape[0]]  # a leading slice: same address
        with torch.cuda.stream(self.stream):
            dst.copy_(
                torch.from_numpy(np.ascontiguousarray(video)).to(dst.dtype), non_blocking=False
            )
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeFailure(f"TensorRT failed to run {self.engine_path}")
            outs = {name: self._output(name).float().cpu() for name in self.output_names}
        self.stream.synchronize()
        return {name: t.numpy() for name, t in outs.items()}

    def _output(self, name: str):
        """An output as this call's shape: the leading part of its (max-batch) buffer."""
        buf = self.buffers[name]
        if self.batch is None:
            return buf
        shape = tuple(self.context.get_tensor_shape(name))
        count = int(np.prod(shape)) if shape else 1
        return buf.reshape(-1)[:count].reshape(shape)

    def layer_times(self, iterations: int = 3) -> dict[str, float]:
        """Mean milliseconds per engine layer (TensorRT IProfiler) over `iterations` runs of the
        last input, in a separate execution context so timed runs stay unprofiled."""
        trt = require_tensorrt()

        class _Profiler(trt.IProfiler):
            def __init__(self):
                trt.IProfiler.__init__(self)
                self.times: dict[str, float] = {}

            def report_layer_time(self, layer_name, ms):
                self.times[layer_name] = self.times.get(layer_name, 0.0) + float(ms)

        profiler = _Profiler()
        context = self.engine.create_execution_context()
        context.profiler = profiler
        for name, buf in self.buffers.items():
            context.set_tensor_address(name, buf.data_ptr())
        self._set_batch(context, self._last_shape)
        for _ in range(max(1, iterations)):
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeFailure(
                    f"TensorRT failed to run {self.engine_path} under the profiler"
                )
            self.stream.synchronize()
        times = {k: v / max(1, iterations) for k, v in profiler.times.items()}
        del context
        return times

    def breakdown(self, video, schedule_rows, iterations, workdir) -> Breakdown:
        self.run(video)
        return from_named_times(self.layer_times(iterations), "TensorRT IProfiler")

    def close(self) -> None:
        self.context = None
        self.engine = None
