"""Image decoding and the eval/train presets. Defined once; CLI, training and service all use it."""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2 as T

from emojinet.errors import ImageTooLargeError, InvalidImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PreprocessConfig",
    "decode_image",
    "eval_preset",
    "load_image",
    "to_tensor_batch",
    "train_preset",
]

# 40 megapixels: a 50 MP phone photo is refused, a 12 MP one is fine. PIL's own bomb check
# (about 89 MP) is a second line of defence.
DEFAULT_MAX_PIXELS = 40_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class PreprocessConfig:
    """How a backbone expects its input. Travels with the weights."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        return cls(
            input_size=int(d["input_size"]),
            resize_size=int(d["resize_size"]),
            mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            interpolation=str(d.get("interpolation", "bilinear")),
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode → RGB. Transparency is composited on white, high bit depths are rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), mode="L").convert("RGB")
    return img.convert("RGB")


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Decode image bytes into an upright RGB image.

    Applies EXIF orientation, takes the first frame of animations, and refuses images with
    more than ``max_pixels`` pixels *before* decoding them (decompression bombs).
    ``draft_size`` lets JPEG decoding shrink by 2/4/8 on the fly when the result only needs
    to be about that size (much faster for large photos).

    Raises:
        InvalidImageError: empty, not an image, truncated or otherwise undecodable.
        ImageTooLargeError: more than ``max_pixels`` pixels.
    """
    if not data:
        raise InvalidImageError("the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise InvalidImageError(f"the image has an invalid size {width}x{height}")
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"the image is {width}x{height} = {width * height:,} pixels; "
                    f"the limit is {max_pixels:,} pixels: resize it and try again"
                )
            if getattr(img, "is_animated", False):
                img.seek(0)
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            upright: Image.Image = ImageOps.exif_transpose(img) or img
            return _to_rgb(upright)
    except (ImageTooLargeError, InvalidImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"the image declares far more than {max_pixels:,} pixels (a decompression bomb?): "
            "resize it and try again"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            "the data is not an image in a format we can read (JPEG, PNG, GIF, WebP, BMP, TIFF)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"the image could not be decoded (truncated or corrupt): {exc}"
        ) from exc
    except Exception as exc:  # PIL plugins raise a wide range of errors on hostile input
        raise InvalidImageError(f"the image could not be decoded: {type(exc).__name__}") from exc


def load_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Read and decode an image file (see :func:`decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image(data, max_pixels=max_pixels, draft_size=draft_size)


def _interpolation(name: str) -> T.InterpolationMode:
    try:
        return T.InterpolationMode(name)
    except ValueError:
        choices = ", ".join(m.value for m in T.InterpolationMode)
        raise ValueError(f"unknown interpolation {name!r}; choose one of {choices}") from None


def eval_preset(cfg: PreprocessConfig) -> T.Compose:
    """Resize the short side to ``resize_size``, centre-crop ``input_size``, normalise.

    Input: an RGB PIL image. Output: float tensor (3, input_size, input_size).
    """
    return T.Compose(
        [
            T.PILToTensor(),
            T.Resize(
                cfg.resize_size, interpolation=_interpolation(cfg.interpolation), antialias=True
            ),
            T.CenterCrop(cfg.input_size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(cfg.mean), std=list(cfg.std)),
        ]
    )


def train_preset(
    cfg: PreprocessConfig, *, scale: tuple[float, float] = (0.35, 1.0), hflip: bool = True
) -> T.Compose:
    """Random-resized crop, optional horizontal flip, light colour jitter, normalise."""
    steps: list[Any] = [
        T.PILToTensor(),
        T.RandomResizedCrop(
            cfg.input_size,
            scale=scale,
            interpolation=_interpolation(cfg.interpolation),
            antialias=True,
        ),
    ]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [
        T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean=list(cfg.mean), std=list(cfg.std)),
    ]
    return T.Compose(steps)


def to_tensor_batch(images: list[Image.Image], cfg: PreprocessConfig) -> torch.Tensor:
    """Eval-preprocess several images into one (N, 3, H, W) float tensor."""
    transform = eval_preset(cfg)
    return torch.stack([transform(img) for img in images])
