"""What an exported graph says about itself: the `vidtldr.*` metadata_props written at export and
read back by validation, profiling, the engine build and serving (docs/design.md, "ONNX contract")."""

from __future__ import annotations

import json
from dataclasses import dataclass

import onnx

from vidtldr_deploy import __version__
from vidtldr_deploy.constants import META_PREFIX, MergeImpl
from vidtldr_deploy.core.schedule import MergeSchedule

DEFAULT_OPSET = 18


@dataclass(frozen=True)
class ExportSpec:
    """What a graph was exported as: everything needed to rebuild its PyTorch reference."""

    arch: str
    frames: int
    batch: int
    schedule: MergeSchedule
    merge_impl: str = "onnx"
    opset: int = DEFAULT_OPSET
    checkpoint_sha256: str = ""
    checkpoint: str = ""

    @property
    def impl(self) -> MergeImpl:
        return MergeImpl.parse(self.merge_impl, allowed=("onnx", "plugin"))

    def metadata(self, model) -> dict[str, str]:
        side = model.cfg.img_size
        return {
            "version": __version__,
            "arch": self.arch,
            "frames": str(self.frames),
            "batch": str(self.batch),
            "input_shape": json.dumps([self.batch, 3, self.frames, side, side]),
            "outputs": json.dumps(list(model.output_names)),
            "merge_impl": self.impl.export_name,
            "schedule": json.dumps(self.schedule.to_dict()),
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint": self.checkpoint,
        }


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The `vidtldr.*` metadata_props of an exported graph, without the prefix."""
    return {
        p.key.removeprefix(META_PREFIX): p.value
        for p in model.metadata_props
        if p.key.startswith(META_PREFIX)
    }
