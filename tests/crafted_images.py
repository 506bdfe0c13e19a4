"""Crafted image files for the input-cost tests: absurd shapes in a few bytes, and real files
in formats the product refuses to decode."""

from __future__ import annotations

import functools
import io
import struct

from PIL import Image

__all__ = ["OTHER", "encode", "other_formats", "psd", "strip_png"]


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@functools.cache
def strip_png(width: int, height: int = 1) -> bytes:
    """A tiny PNG declaring an absurd shape (84 bytes for 4000x1)."""
    return encode(Image.new("L", (width, height)))


def psd(width: int = 4, height: int = 3) -> bytes:
    """A minimal real Photoshop file: header, empty sections, raw RGB pixels."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">IIIH", 0, 0, 0, 0) + bytes(3 * width * height)


def other_formats() -> dict[str, bytes]:
    img = Image.new("RGB", (16, 16), (200, 10, 10))
    out = {"PSD": psd()}
    for fmt in ("JPEG2000", "TGA", "EPS", "PCX", "SGI", "QOI", "DDS", "IM", "PPM", "ICNS"):
        out[fmt] = encode(img, fmt)
    out["SPIDER"] = encode(img.convert("L"), "SPIDER")
    for fmt in ("MSP", "XBM"):
        out[fmt] = encode(img.convert("1"), fmt)
    return out


OTHER = other_formats()
