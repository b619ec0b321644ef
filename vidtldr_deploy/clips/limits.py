"""How much one clip may cost to decode: frame pixels and decoded bytes, checked from the stream's
header before frames are decoded, so a small file of huge frames is refused in milliseconds
instead of taking gigabytes. Defaults admit 4K video; a flag or an environment variable raises them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vidtldr_deploy.errors import InputError

PIXELS_ENV = "VIDTLDR_MAX_FRAME_PIXELS"
CLIP_MIB_ENV = "VIDTLDR_MAX_CLIP_MIB"
DEFAULT_FRAME_PIXELS = 4096 * 4096  # 4K UHD (3840x2160) and DCI 4K (4096x2160) fit
DEFAULT_CLIP_MIB = 4096  # the sampled frames as RGB: 64 frames of 4096x4096 fit
RGB_BYTES = 3


def _positive(raw: str | int | float, what: str, kind: type) -> int | float:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise InputError(f"{what}={raw!r} is not a number") from None
    if not value > 0:
        raise InputError(f"{what}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """The largest frame (pixels) and the most decoded bytes one clip may take."""

    max_frame_pixels: int = DEFAULT_FRAME_PIXELS
    max_clip_bytes: int = DEFAULT_CLIP_MIB << 20

    @classmethod
    def resolve(
        cls, max_frame_pixels: int | None = None, max_clip_mib: float | None = None
    ) -> DecodeLimits:
        """Flags first, then VIDTLDR_MAX_FRAME_PIXELS / VIDTLDR_MAX_CLIP_MIB, then the defaults."""
        pixels = (
            _positive(max_frame_pixels, "--max-frame-pixels", int)
            if max_frame_pixels is not None
            else _positive(os.environ.get(PIXELS_ENV) or DEFAULT_FRAME_PIXELS, PIXELS_ENV, int)
        )
        mib = (
            _positive(max_clip_mib, "--max-clip-mib", float)
            if max_clip_mib is not None
            else _positive(os.environ.get(CLIP_MIB_ENV) or DEFAULT_CLIP_MIB, CLIP_MIB_ENV, float)
        )
        return cls(int(pixels), int(mib * 2**20))

    def check_frame(self, name: str, width: int, height: int) -> None:
        if width * height > self.max_frame_pixels:
            raise InputError(
                f"{name}: frames of {width}x{height} = {width * height:,} pixels are over the "
                f"limit of {self.max_frame_pixels:,} pixels per frame: raise it with "
                f"--max-frame-pixels or {PIXELS_ENV} if this machine has the memory"
            )

    def check_clip(self, name: str, width: int, height: int, frames: int) -> None:
        """The frame limit, then the bytes of `frames` decoded RGB frames of this size."""
        self.check_frame(name, width, height)
        total = frames * width * height * RGB_BYTES
        if total > self.max_clip_bytes:
            raise InputError(
                f"{name}: {frames} decoded frames of {width}x{height} take {total / 2**20:,.0f} "
                f"MiB, over the limit of {self.max_clip_bytes / 2**20:,.0f} MiB per clip: raise it "
                f"with --max-clip-mib or {CLIP_MIB_ENV} if this machine has the memory"
            )
