"""A bound on the work of reading an image's header, checked before Pillow reads it.

Pillow reads JPEG markers, PNG chunks and GIF blocks in Python, one at a time, until the pixel
data begins. A header padded with empty segments, fill bytes or one-byte blocks is legal and
cheap to send but not to read: 4 MB of them took Pillow 1.0-1.5 s here (a 20 MB body, several
seconds of a core, twice: the header is read again when decoding), for a picture that decodes
in a millisecond. Real photos have tens of segments before their pixels. :func:`check_header`
walks the same structure with slicing and ``bytes.find`` (no per-byte Python) and refuses one
with more than :data:`MAX_SEGMENTS` segments or :data:`MAX_FILL` bytes of padding there.

No library offers this bound (Pillow's parsers have no limit to set), hence the walkers here.
They only count: anything they do not understand is left to Pillow, which reports it.
"""

from __future__ import annotations

from emojinet.errors import InvalidImageError

__all__ = ["MAX_FILL", "MAX_SEGMENTS", "check_header"]

MAX_SEGMENTS = 1024  # JPEG segments, PNG chunks or GIF sub-blocks before the first pixels
MAX_FILL = 4096  # JPEG bytes between segments (0xFF padding or junk), read one by one by Pillow

_PNG = b"\x89PNG\r\n\x1a\n"


def check_header(data: bytes) -> None:
    """Raise :class:`InvalidImageError` if reading ``data``'s header would cost too much."""
    if data[:2] == b"\xff\xd8":
        _jpeg(data)
    elif data[:8] == _PNG:
        _png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _gif(data)


def _refuse(what: str) -> InvalidImageError:
    return InvalidImageError(
        f"the image's header has {what} before its pixels (real photos have tens): refused unread"
    )


def _jpeg(data: bytes) -> None:
    """Markers from SOI to SOS (start of scan), as Pillow's JPEG plugin reads them."""
    i, segments, fill = 2, 0, 0
    while i < len(data):
        at = data.find(b"\xff", i)
        if at < 0:
            return
        fill += at - i  # junk that Pillow skips a byte at a time
        j = at
        while j < len(data) and data[j] == 0xFF:  # padding: bounded by MAX_FILL below
            j += 1
            if fill + j - at > MAX_FILL:
                raise _refuse(f"more than {MAX_FILL:,} bytes of padding")
        fill += j - at - 1
        if j >= len(data) or data[j] == 0xDA:  # the end, or start of scan: the header is read
            return
        segments += 1
        if segments > MAX_SEGMENTS:
            raise _refuse(f"more than {MAX_SEGMENTS:,} segments")
        if 0xD0 <= data[j] <= 0xD9 or data[j] == 0x01:  # markers without a length
            i = j + 1
        else:
            i = j + 1 + int.from_bytes(data[j + 1 : j + 3], "big")


def _png(data: bytes) -> None:
    """Chunks from the signature to the first IDAT."""
    i, chunks = len(_PNG), 0
    while i + 8 <= len(data):
        if data[i + 4 : i + 8] == b"IDAT":
            return
        chunks += 1
        if chunks > MAX_SEGMENTS:
            raise _refuse(f"more than {MAX_SEGMENTS:,} chunks")
        i += 12 + int.from_bytes(data[i : i + 4], "big")  # length, type, data, CRC


def _gif(data: bytes) -> None:
    """Blocks from the screen descriptor to the first image (Pillow skips stray bytes singly)."""
    flags = data[10] if len(data) > 10 else 0
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    blocks = stray = 0
    while i < len(data) and data[i] not in (0x2C, 0x3B):  # an image, or the trailer
        if data[i] != 0x21:
            stray += 1
            if stray > MAX_FILL:
                raise _refuse(f"more than {MAX_FILL:,} stray bytes")
            i += 1
            continue
        i += 2  # an extension: its label, then sized sub-blocks up to an empty one
        while i < len(data) and data[i]:
            blocks += 1
            if blocks > MAX_SEGMENTS:
                raise _refuse(f"more than {MAX_SEGMENTS:,} extension blocks")
            i += 1 + data[i]
        i += 1
