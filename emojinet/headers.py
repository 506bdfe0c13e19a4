"""A bound on the work of reading an image's header, and its size read within a tighter one.

Pillow reads JPEG markers, PNG chunks and GIF blocks in Python, one at a time, until the pixel
data begins. A header padded with empty segments, fill bytes or one-byte blocks is legal and
cheap to send but not to read: 4 MB of them took Pillow 1.0-1.5 s here (a 20 MB body, several
seconds of a core, twice: the header is read again when decoding), for a picture that decodes
in a millisecond. Real photos have tens of segments before their pixels. :func:`check_header`
walks the same structure with slicing and ``bytes.find`` (no per-byte Python) and refuses one
with more than :data:`MAX_SEGMENTS` segments or :data:`MAX_FILL` bytes of padding there.

:func:`header_size` makes the same walk within much tighter limits (:data:`QUICK_SEGMENTS`,
:data:`QUICK_FILL`: tens of microseconds at most, cheap enough for the server's event loop) and
returns the format and size the header declares: what the server needs to price a photo before
it queues for a decode thread, without handing it to a thread just to read its header.

No library offers this bound (Pillow's parsers have no limit to set), hence the walkers here.
They only count and read sizes: anything they do not understand is left to Pillow.
"""

from __future__ import annotations

import re
from typing import Literal

from emojinet.errors import InvalidImageError

__all__ = [
    "MAX_FILL",
    "MAX_SEGMENTS",
    "QUICK_FILL",
    "QUICK_SEGMENTS",
    "check_header",
    "header_size",
]

MAX_SEGMENTS = 1024  # JPEG segments, PNG chunks or GIF sub-blocks before the first pixels
MAX_FILL = 4096  # JPEG bytes between segments (0xFF padding or junk), read one by one by Pillow
QUICK_SEGMENTS = 32  # header_size's limits: real photos here have at most 12 (JPEG), 16 (PNG)
QUICK_FILL = 64

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size): C0-CF but DHT (C4), JPG (C8), DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_FF_RUN = re.compile(rb"\xff+")
_GIF_BLOCK = re.compile(rb"[\x21\x2c\x3b]")  # an extension, an image, the trailer

Size = tuple[str, int, int]  # format (as Pillow names it), width, height


class _Over(Exception):
    """The walk went past a limit; the message says which."""


def check_header(data: bytes) -> None:
    """Raise :class:`InvalidImageError` if reading ``data``'s header would cost too much."""
    try:
        _walk(data, MAX_SEGMENTS, MAX_FILL)
    except _Over as over:
        raise InvalidImageError(
            f"the image's header has {over} before its pixels (real photos have tens): "
            "refused unread"
        ) from None


def header_size(data: bytes) -> Size | None:
    """The format, width and height a JPEG, PNG or GIF header declares, read only if it has at
    most :data:`QUICK_SEGMENTS` segments and :data:`QUICK_FILL` padding bytes; otherwise, and
    for other formats or headers this cannot read, None (Pillow then reads it).

    The size is the one Pillow reports (a GIF's first frame may widen its screen); nothing is
    checked: a header that declares a size may still be refused when decoded.
    """
    try:
        return _walk(data, QUICK_SEGMENTS, QUICK_FILL)
    except _Over:
        return None


def _walk(data: bytes, segments: int, fill: int) -> Size | None:
    if data[:2] == b"\xff\xd8":
        return _jpeg(data, segments, fill)
    if data[:8] == _PNG:
        return _png(data, segments)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data, segments, fill)
    return None


def _u16(data: bytes, at: int, order: Literal["big", "little"] = "big") -> int:
    return int.from_bytes(data[at : at + 2], order)


def _jpeg(data: bytes, max_segments: int, max_fill: int) -> Size | None:
    """Markers from SOI to SOS (start of scan), as Pillow's JPEG plugin reads them."""
    i, segments, fill, size = 2, 0, 0, None
    while i < len(data):
        at = data.find(b"\xff", i, i + max_fill - fill + 1)
        if at < 0:
            if i + max_fill - fill + 1 < len(data):
                raise _Over(f"more than {max_fill:,} bytes of padding")
            return None
        fill += at - i  # junk that Pillow skips a byte at a time
        if data[at + 1 : at + 2] != b"\xff":  # a marker, unpadded (the usual case)
            ff = 1
        else:  # 0xFF padding, then the marker
            run = _FF_RUN.match(data, at, at + max_fill - fill + 2)
            ff = run.end() - at if run else 0
        if fill + ff > max_fill:
            raise _Over(f"more than {max_fill:,} bytes of padding")
        fill += ff - 1
        j = at + ff
        if j >= len(data):
            return None
        if data[j] == 0xDA:  # start of scan: the header is read
            return ("JPEG", *size) if size else None
        segments += 1
        if segments > max_segments:
            raise _Over(f"more than {max_segments:,} segments")
        if 0xD0 <= data[j] <= 0xD9 or data[j] == 0x01:  # markers without a length
            i = j + 1
            continue
        if data[j] in _SOF and j + 8 <= len(data):  # length, precision, height, width
            size = (_u16(data, j + 6), _u16(data, j + 4))
        i = j + 1 + _u16(data, j + 1)
    return None


def _png(data: bytes, max_chunks: int) -> Size | None:
    """Chunks from the signature to the first IDAT; the size is IHDR's, the first chunk."""
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    size = ("PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    i, chunks = len(_PNG), 0
    while i + 8 <= len(data):
        if data[i + 4 : i + 8] == b"IDAT":
            return size
        chunks += 1
        if chunks > max_chunks:
            raise _Over(f"more than {max_chunks:,} chunks")
        i += 12 + int.from_bytes(data[i : i + 4], "big")  # length, type, data, CRC
    return None


def _gif(data: bytes, max_blocks: int, max_stray: int) -> Size | None:
    """Blocks from the screen descriptor to the first image (Pillow skips stray bytes singly)."""
    flags = data[10] if len(data) > 10 else 0
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    blocks = stray = 0
    while i < len(data):
        found = _GIF_BLOCK.search(data, i, i + max_stray - stray + 1)
        at = found.start() if found else min(len(data), i + max_stray - stray + 1)
        stray += at - i
        if stray > max_stray:
            raise _Over(f"more than {max_stray:,} stray bytes")
        i = at
        if i >= len(data) or data[i] == 0x3B:  # the end, or the trailer: no image
            return None
        if data[i] == 0x2C:  # the first image: Pillow widens the screen to hold it
            if i + 9 > len(data):
                return None
            x, y, w, h = (_u16(data, i + k, "little") for k in (1, 3, 5, 7))
            return ("GIF", max(_u16(data, 6, "little"), x + w), max(_u16(data, 8, "little"), y + h))
        i += 2  # an extension: its label, then sized sub-blocks up to an empty one
        while i < len(data) and data[i]:
            blocks += 1
            if blocks > max_blocks:
                raise _Over(f"more than {max_blocks:,} extension blocks")
            i += 1 + data[i]
        i += 1
    return None
