"""Image decoding and eval preprocessing. Defined once; CLI, training and service all use it.

Decoding and :func:`eval_array` (serving) need no torch; the torchvision presets that training
uses are in :mod:`emojinet.presets`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from emojinet.errors import (
    ConfigError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageFormatError,
)
from emojinet.headers import check_header, header_size

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_ASPECT_RATIO",
    "MAX_SIDE",
    "SUPPORTED_FORMATS",
    "ImageHeader",
    "PreprocessConfig",
    "decode_image",
    "eval_array",
    "load_image",
    "probe_image",
    "read_header",
]

# 40 megapixels: a 50 MP phone photo is refused, a 12 MP one is fine. PIL's own bomb check
# (about 89 MP) is a second line of defence.
DEFAULT_MAX_PIXELS = 40_000_000
# Absurd shapes cost far more than their pixel count: resizing the short side of a 4000x1 image
# to 256 makes it 1,024,000x256. Panoramas (up to about 12:1) and 16,384-px scans pass.
MAX_SIDE = 20_000
MAX_ASPECT_RATIO = 20.0
# The formats the product reads. ``Image.open(formats=...)`` never runs any other Pillow plugin:
# PSD, JPEG 2000, TGA, EPS (which would run Ghostscript) … are attack surface nobody asked for.
# Cameras' multi-picture JPEGs (MPO) open through the JPEG plugin.
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_SUPPORTED_TEXT = "JPEG, PNG, GIF, WebP, BMP or TIFF"
# libwebp decodes into several full-size buffers (about 16 bytes a pixel, 4x the others), so a
# WebP may have only a quarter of the pixels: every format then costs at most ~4 bytes × max_pixels.
_FULL_SIZE_COPIES = {"WEBP": 4}
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class PreprocessConfig:
    """How a backbone expects its input. Travels with the weights."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    #: ``"center"``: resize the short side to ``resize_size`` and crop the centre square;
    #: ``"full"``: resize the whole picture to ``input_size`` squared (nothing cut off).
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.crop not in ("center", "full"):
            raise ConfigError(f"unknown crop {self.crop!r}; choose 'center' or 'full'")

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
            crop=str(d.get("crop", "center")),
        )


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, before any pixel is decoded."""

    format: str  # one of SUPPORTED_FORMATS, or "MPO"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


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


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"the image has an invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,} pixels: resize it and try again"
        )
    if max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels; the longest side may be at most "
            f"{MAX_SIDE:,} pixels: resize it and try again"
        )
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT_RATIO * short:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels, a {long / short:,.0f}:1 strip; "
            f"the limit is {MAX_ASPECT_RATIO:g}:1: crop it and try again"
        )


def _unsupported_format(data: bytes) -> str | None:
    """The Pillow format whose signature ``data`` starts with, when it is one we do not read.

    Only the plugins' signature checks run (a comparison of the first bytes), never a decoder.
    """
    prefix = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        if name in SUPPORTED_FORMATS or accept is None:
            continue
        with contextlib.suppress(Exception):
            if accept(prefix):
                return name
    return None


@contextlib.contextmanager
def _decoding(data: bytes, max_pixels: int) -> Iterator[None]:
    """Turn whatever Pillow raises on hostile input into our errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (ImageTooLargeError, InvalidImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"the image declares far more than {max_pixels:,} pixels (a decompression bomb?): "
            "resize it and try again"
        ) from exc
    except UnidentifiedImageError as exc:
        if (name := _unsupported_format(data)) is not None:
            raise UnsupportedImageFormatError(
                f"the file looks like a {name} image, a format EmojiNet does not read: "
                f"send a {_SUPPORTED_TEXT} image"
            ) from exc
        raise InvalidImageError(
            "the data is not an image in a format we can read (JPEG, PNG, GIF, WebP, BMP, TIFF)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"the image could not be decoded (truncated or corrupt): {exc}"
        ) from exc
    except Exception as exc:  # PIL plugins raise a wide range of errors on hostile input
        raise InvalidImageError(f"the image could not be decoded: {type(exc).__name__}") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (the header only) with the supported plugins, and check the size."""
    if not data:
        raise InvalidImageError("the image is empty (0 bytes)")
    check_header(data)  # a header that would take Pillow seconds to read is refused unread
    img = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    _check_size(*img.size, max_pixels)
    copies = _FULL_SIZE_COPIES.get(str(img.format), 1)
    if img.width * img.height * copies > max_pixels:
        raise ImageTooLargeError(
            f"the image is {img.width}x{img.height} = {img.width * img.height:,} pixels; the limit "
            f"for {img.format} images is {max_pixels // copies:,} pixels: resize it and try again"
        )
    return img


def probe_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """The format and size from the header alone, checked like :func:`decode_image` checks them.

    Raises:
        InvalidImageError, UnsupportedImageFormatError, ImageTooLargeError: as decode_image.
    """
    with _decoding(data, max_pixels):
        img = _open(data, max_pixels)
        return ImageHeader(str(img.format), *img.size)


def read_header(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader | None:
    """:func:`probe_image` without Pillow, in microseconds, for a JPEG, PNG or GIF with a short
    header (:func:`emojinet.headers.header_size`); None for anything else (ask probe_image).

    Refuses the size as probe_image does; the rest of the header is checked when it is decoded.
    """
    found = header_size(data)
    if found is None:
        return None
    _check_size(found[1], found[2], max_pixels)
    return ImageHeader(*found)


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Decode image bytes into an upright RGB image.

    Reads the header first and refuses, before decoding a pixel, formats outside
    :data:`SUPPORTED_FORMATS`, more than ``max_pixels`` pixels, a side over :data:`MAX_SIDE` and
    shapes beyond :data:`MAX_ASPECT_RATIO`. Applies EXIF orientation and takes the first frame of
    animations. ``draft_size`` says the result only needs a short side of about that size: JPEG
    then decodes at 1/2, 1/4 or 1/8 scale, and other formats are shrunk by an integer factor
    strip by strip, so the only full-size buffer is the decoded source (at most 4 bytes a pixel).

    Raises:
        InvalidImageError: empty, not an image, truncated or otherwise undecodable.
        UnsupportedImageFormatError: an image in a format outside SUPPORTED_FORMATS.
        ImageTooLargeError: too many pixels, a side too long, or too elongated.
    """
    with _decoding(data, max_pixels):
        img = _open(data, max_pixels)
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        if draft_size is not None:
            img = _reduce(img, draft_size)
        if (method := _ORIENTATIONS.get(orientation)) is not None:
            img = img.transpose(method)
        return _to_rgb(img)


# EXIF orientation → the transpose that makes the picture upright (as ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Image.reduce cannot average (palette indices, bits, 16-bit) → one it can.
_REDUCIBLE = {"1": "L", "P": "RGB", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I"}


def _reduce(img: Image.Image, target: int) -> Image.Image:
    """Shrink by the largest integer factor that keeps the short side ≥ ``target``.

    Works on strips of about 2 megapixels, so no second full-size copy is ever made (converting
    a whole 40 MP RGBA image to premultiplied alpha alone would take 160 MB more).
    """
    factor = min(img.size) // target
    if factor < 2:
        return img
    mode = _REDUCIBLE.get(img.mode, img.mode)
    if img.mode == "P" and "transparency" in img.info:
        mode = "RGBA"
    width, height = img.size
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    step = factor * max(1, (1 << 21) // (width * factor))  # source rows per strip
    for top in range(0, height, step):
        strip = img.crop((0, top, width, min(top + step, height)))
        if strip.mode != mode:
            strip = strip.convert(mode)
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


def load_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Read and decode an image file (see :func:`decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image(data, max_pixels=max_pixels, draft_size=draft_size)


# torchvision's interpolation names → Pillow's filters (antialiased when shrinking, as
# torchvision's ``antialias=True``).
_PIL_FILTERS = {
    name: Image.Resampling[name.removesuffix("-exact").upper()]
    for name in ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
}


def eval_array(img: Image.Image, cfg: PreprocessConfig) -> npt.NDArray[np.float32]:
    """:func:`eval_preset` with Pillow and numpy: RGB image → (3, input_size, input_size) float32.

    Matches the torchvision preset to within about one grey level (Pillow and torchvision
    resize the same way, up to rounding); serving uses it so that it needs no torch.
    """
    if (resample := _PIL_FILTERS.get(cfg.interpolation)) is None:
        raise ConfigError(f"unknown interpolation {cfg.interpolation!r}; use {list(_PIL_FILTERS)}")
    if img.mode != "RGB":
        img = img.convert("RGB")
    if cfg.crop == "full":
        img = img.resize((cfg.input_size, cfg.input_size), resample)
    else:  # torchvision's Resize (short side) and CenterCrop, with their rounding
        short, long = min(img.size), max(img.size)
        new = (cfg.resize_size, int(cfg.resize_size * long / short))
        img = img.resize(new if img.width <= img.height else new[::-1], resample)
        left, top = (round((side - cfg.input_size) / 2.0) for side in img.size)
        img = img.crop((left, top, left + cfg.input_size, top + cfg.input_size))
    pixels = np.asarray(img)  # (H, W, 3) uint8
    lut = _normalise_table(cfg.mean, cfg.std)
    out: npt.NDArray[np.float32] = np.empty((3, *pixels.shape[:2]), np.float32)
    for c in range(3):  # one table look-up a value: a fifth of the float arithmetic's time
        np.take(lut[c], pixels[:, :, c], out=out[c])
    return out


@functools.lru_cache(maxsize=8)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> npt.NDArray[np.float32]:
    """(3, 256): ``(v / 255 - mean) / std`` for every byte value ``v``, in float32 and in that
    order, so that looking a pixel up gives the very bits the arithmetic gave."""
    v = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
    table: npt.NDArray[np.float32] = (v - np.asarray(mean, np.float32)[:, None]) / np.asarray(
        std, np.float32
    )[:, None]
    return table
