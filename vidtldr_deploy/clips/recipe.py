"""The per-family clip recipe: how a family's frames were sampled and preprocessed at evaluation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from vidtldr_deploy.errors import InputError, VidTLDRError

# ImageNet statistics: UMT normalises with them, and so do the released VideoMAE checkpoints
# (their preprocessor_config.json), although transformers' VideoMAEImageProcessor *defaults* to
# IMAGENET_STANDARD (0.5, 0.5, 0.5); callers must not rely on that default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SAMPLINGS = ("middle", "uniform")
RESIZES = ("short_side_bilinear",)
CROPS = ("center",)


@dataclass(frozen=True)
class ClipRecipe:
    """How to turn a decoded video into model input for one family.

    sampling: "middle" (T equal segments, middle frame of each) or "uniform" (linspace over all
    frames); resize: "short_side_bilinear" (short side to image_size, PIL bilinear, long side
    truncated as transformers does); crop: "center" (image_size x image_size)."""

    family: str
    sampling: str
    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "short_side_bilinear"
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {self.sampling!r}: use one of {SAMPLINGS}")
        if self.resize not in RESIZES or self.crop not in CROPS:
            raise InputError(f"unsupported resize/crop {self.resize!r}/{self.crop!r}")
        if self.image_size < 1:
            raise InputError(f"image size must be positive, got {self.image_size}")

    def with_size(self, image_size: int) -> ClipRecipe:
        return replace(self, image_size=image_size)

    def key(self) -> str:
        """A stable text of every field that changes the pixels (part of the cache key)."""
        return (
            f"{self.sampling}|{self.image_size}|{','.join(map(repr, self.mean))}|"
            f"{','.join(map(repr, self.std))}|{self.resize}|{self.crop}"
        )

    def to_json(self) -> str:
        """Every field, as text a Triton config parameter can carry (see from_json)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClipRecipe:
        """The recipe to_json wrote: no model registry (and no torch) needed to read it back."""
        try:
            fields = json.loads(text)
            fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as err:
            raise InputError(f"not a clip recipe: {text!r} ({err})") from None

    def describe(self) -> str:
        return f"{self.family} ({self.sampling} sampling, {self.image_size}px {self.crop} crop)"


# UMT and VideoMAE are both evaluated at 224 px after a short-side resize and centre crop; they
# differ only in where the T frames come from.
FAMILY_RECIPES: dict[str, ClipRecipe] = {
    "umt": ClipRecipe(family="umt", sampling="middle", image_size=224),
    "videomae": ClipRecipe(family="videomae", sampling="uniform", image_size=224),
}


def recipe_for(name: str, *, image_size: int | None = None) -> ClipRecipe:
    """The recipe for a family ("umt", "videomae") or a registered architecture ("umt-b16",
    "videomae-tiny": its family, at its config's image size); image_size overrides either."""
    key = name.lower()
    if key in FAMILY_RECIPES:
        recipe = FAMILY_RECIPES[key]
    else:
        arch = _architecture(name)
        if arch.family not in FAMILY_RECIPES:
            raise InputError(f"architecture {name!r} (family {arch.family!r}) has no clip recipe")
        recipe = FAMILY_RECIPES[arch.family].with_size(arch.config.img_size)
    return recipe if image_size is None else recipe.with_size(image_size)


def frames_for(name: str, frames: int | None = None) -> int:
    """T for an architecture: the override if given, else the registry's default_frames."""
    if frames is not None:
        if frames < 1:
            raise InputError(f"frames must be positive, got {frames}")
        return frames
    return _architecture(name).default_frames


def _architecture(name: str):
    # Imported late: the registry pulls in torch and the model families, which plain clip
    # loading by family name does not need.
    from vidtldr_deploy.models.registry import get_architecture

    try:
        return get_architecture(name)
    except VidTLDRError as err:
        raise InputError(f"{err}; or a clip family: {', '.join(sorted(FAMILY_RECIPES))}") from err
