"""Headers padded to be slow to read are refused unread; real headers of any usual size pass."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zlib

import httpx
import pytest
from PIL import Image
from service_helpers import FakePredictor, ThreadedServer

from benchmarks.bench_decode import padded_headers  # the benchmark's own cases
from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.headers import (
    MAX_FILL,
    MAX_SEGMENTS,
    QUICK_FILL,
    QUICK_SEGMENTS,
    check_header,
    header_size,
)
from emojinet.preprocess import decode_image, probe_image, read_header
from service.app import create_app
from service.settings import Settings


def _encode(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).convert("P" if fmt == "GIF" else "RGB").save(
        buf, fmt, **kw
    )
    return buf.getvalue()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _jpeg_with(segment: bytes, n: int) -> bytes:
    jpeg = _encode("JPEG")
    return jpeg[:2] + segment * n + jpeg[2:]


def _png_with(chunk: bytes, n: int) -> bytes:
    png = _encode("PNG")
    return png[:33] + chunk * n + png[33:]  # after the signature and IHDR


def _gif_with(extension_body: bytes) -> bytes:
    gif = _encode("GIF")
    at = gif.index(b"\x2c")  # the image descriptor
    return gif[:at] + b"\x21\xfe" + extension_body + b"\x00" + gif[at:]


@pytest.mark.parametrize("name", list(padded_headers()))
def test_the_benchmarks_padded_headers_are_refused_by_probe_and_decode(name: str) -> None:
    data = padded_headers()[name]
    for read in (probe_image, decode_image):
        with pytest.raises(InvalidImageError, match="header has more than"):
            read(data)


@pytest.mark.parametrize(
    "data",
    [
        _jpeg_with(b"\xff\xfe\x00\x02", MAX_SEGMENTS + 1),  # empty comments
        _jpeg_with(b"\xff", MAX_FILL + 2),  # fill bytes before a marker
        _jpeg_with(b"\x00", MAX_FILL + 1),  # junk Pillow would skip byte by byte
        _png_with(_png_chunk(b"abCd", b""), MAX_SEGMENTS + 1),
        _gif_with(b"\x01a" * (MAX_SEGMENTS + 1)),
        _encode("GIF")[:13] + b"\x00" * (MAX_FILL + 1) + _encode("GIF")[13:],
    ],
    ids=["jpeg-segments", "jpeg-fill", "jpeg-junk", "png-chunks", "gif-blocks", "gif-stray"],
)
def test_one_over_each_bound_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidImageError, match="refused unread"):
        check_header(data)


@pytest.mark.parametrize(
    "data",
    [
        _jpeg_with(b"\xff\xfe\x00\x02", MAX_SEGMENTS - 10),
        _jpeg_with(b"\xff\xe2\xff\xff" + b"\x00" * 65_533, 16),  # a 1 MB ICC profile's APP2s
        _encode("JPEG", progressive=True, exif=Image.Exif().tobytes()),
        _png_with(_png_chunk(b"tEXt", b"Comment\x00" + b"x" * 100_000), 20),
        _encode("PNG", optimize=True),
        _gif_with(b"\xffa" + b"a" * 254),
        _encode("TIFF"),
        _encode("WEBP"),
        _encode("BMP"),
    ],
    ids=[
        "jpeg-many",
        "jpeg-icc",
        "jpeg-progressive",
        "png-text",
        "png",
        "gif",
        "tiff",
        "webp",
        "bmp",
    ],
)
def test_usual_headers_pass_and_decode(data: bytes) -> None:
    check_header(data)
    assert decode_image(data).size == (64, 48)


def test_truncated_or_odd_headers_are_left_to_pillow() -> None:
    for data in (b"\xff\xd8", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n\x00", b"GIF89a", b"BM"):
        check_header(data)  # nothing to count: Pillow reports what is wrong
        with pytest.raises(InvalidImageError):
            probe_image(data)


def test_the_server_answers_a_padded_header_with_400() -> None:
    settings = Settings(max_body_bytes=8_000_000)
    data = padded_headers()["JPEG, 4 MB of empty segments"]
    with ThreadedServer(create_app(settings, predictor=FakePredictor())) as srv:
        r = httpx.post(f"{srv.url}/suggest", files={"image": ("x.jpg", data)}, timeout=30)
    assert r.status_code == 400
    assert "header has more than 1,024 segments" in r.json()["detail"]


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _sized_as_pillow_reads() -> dict[str, bytes]:
    rgb = Image.new("RGB", (97, 61), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the header's size is still the stored one
    frames = [Image.new("P", (40, 30), i) for i in range(3)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    at = gif.index(b"\x2c")  # the first image descriptor, moved to (50, 20): the screen widens
    wide_gif = gif[: at + 1] + struct.pack("<HH", 50, 20) + gif[at + 5 :]
    return {
        "jpeg-exif-rotated": _save(rgb, "JPEG", exif=exif.tobytes()),
        "jpeg-progressive": _save(rgb, "JPEG", progressive=True),
        "jpeg-grey": _save(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "jpeg-restart": _save(rgb, "JPEG", restart_marker_blocks=1),
        "png-interlaced": _save(rgb, "PNG", interlace=True),
        "png-16-bit": _save(Image.new("I;16", (97, 61)), "PNG"),
        "png-palette": _save(rgb.convert("P"), "PNG"),
        "gif-animated": gif,
        "gif-frame-past-the-screen": wide_gif,
    }


@pytest.mark.parametrize("name", list(_sized_as_pillow_reads()))
def test_header_size_reads_what_pillow_reads(name: str) -> None:
    data = _sized_as_pillow_reads()[name]
    img = Image.open(io.BytesIO(data))
    assert header_size(data) == (img.format, *img.size)


def test_header_size_reads_real_photos_as_pillow_does(photos: dict[str, bytes]) -> None:
    for data in photos.values():
        assert read_header(data) == probe_image(data)


@pytest.mark.parametrize(
    "data",
    [
        _jpeg_with(b"\xff\xfe\x00\x02", QUICK_SEGMENTS),  # fine for Pillow, long for the loop
        _jpeg_with(b"\xff", QUICK_FILL + 2),
        _jpeg_with(b"\xff\xfe\x00\x02" + b"\x00" * (4 << 20), 1),  # no marker after junk
        _png_with(_png_chunk(b"abCd", b""), QUICK_SEGMENTS + 1),
        _gif_with(b"\x01a" * (QUICK_SEGMENTS + 1)),
        _encode("WEBP"),
        _encode("BMP"),
        _encode("TIFF"),
        _encode("JPEG")[:200],  # no start of scan: cut short
        _encode("PNG")[:40],  # no IDAT
        b"GIF89a" + _encode("GIF")[6:13] + b"\x3b",  # a trailer, no image
    ],
    ids=[
        "jpeg-segments",
        "jpeg-fill",
        "jpeg-junk",
        "png-chunks",
        "gif-blocks",
        "webp",
        "bmp",
        "tiff",
        "jpeg-cut",
        "png-cut",
        "gif-empty",
    ],
)
def test_header_size_leaves_long_or_other_headers_to_pillow(data: bytes) -> None:
    assert header_size(data) is None
    assert read_header(data) is None


def test_read_header_refuses_a_size_as_probe_image_does() -> None:
    ihdr = struct.pack(">II", 25_000, 1_500) + b"\x08\x02\x00\x00\x00"
    png = (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"")
        + _png_chunk(b"IEND", b"")
    )
    for read in (read_header, probe_image):
        with pytest.raises(ImageTooLargeError, match="longest side may be at most"):
            read(png)


def _mutated(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        op = rng.random()
        if op < 0.5:
            data[at] = rng.randrange(256)
        elif op < 0.7:
            del data[at : at + rng.randint(1, 20)]
        elif op < 0.85:  # runs of the bytes the walkers look for
            data[at:at] = bytes([rng.choice(b"\xff\x00\x21\x2c\xda\xc0")]) * rng.randint(1, 50)
        else:
            del data[max(at, 2) :]
        if len(data) < 4:
            break
    return bytes(data)


def test_mangled_headers_raise_only_image_errors_and_sizes_agree_with_pillow() -> None:
    """3,000 seeded mutations of JPEG, PNG and GIF headers: the walkers raise nothing but the
    image errors, and a size they read is the one Pillow reads when Pillow reads one too."""
    rng = random.Random(15)
    seeds = [_encode("JPEG"), _encode("JPEG", progressive=True), _encode("PNG"), _encode("GIF")]
    agreed = 0
    for _ in range(3000):
        data = _mutated(rng.choice(seeds), rng)
        with contextlib.suppress(InvalidImageError):
            check_header(data)
        try:
            quick = read_header(data)
        except (InvalidImageError, ImageTooLargeError):
            continue
        if quick is None:
            continue
        try:
            assert probe_image(data) == quick
            agreed += 1
        except (InvalidImageError, ImageTooLargeError):
            pass  # Pillow refuses what the walker only priced: the decode refuses it too
    assert agreed > 100  # the mutations leave many headers readable: the comparison ran
