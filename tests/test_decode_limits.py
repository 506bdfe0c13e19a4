"""The cost of an input: shapes, formats and memory checked from the header, before decoding."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from crafted_images import OTHER, encode, psd, strip_png
from PIL import Image

from emojinet.errors import ImageTooLargeError, InvalidImageError, UnsupportedImageFormatError
from emojinet.preprocess import PreprocessConfig, decode_image, probe_image
from emojinet.presets import eval_preset

MiB = 1024 * 1024


ABSURD = [
    (4000, "a 4,000:1 strip; the limit is 20:1"),
    (100_000, "the longest side may be at most 20,000 pixels"),
    (40_000_000, "the longest side may be at most 20,000 pixels"),
]


@pytest.mark.parametrize(("width", "detail"), ABSURD, ids=[str(w) for w, _ in ABSURD])
def test_absurd_shapes_are_refused_from_the_header(width: int, detail: str) -> None:
    data = strip_png(width)
    with pytest.raises(ImageTooLargeError, match=detail):
        probe_image(data)
    with pytest.raises(ImageTooLargeError, match=detail):
        decode_image(data, draft_size=256)


def test_panoramas_and_tall_phone_shots_still_pass() -> None:
    for size in ((12_000, 1_000), (1_000, 20_000), (1, 1), (20, 1)):
        header = probe_image(strip_png(*size))
        assert (header.format, header.width, header.height) == ("PNG", *size)


@pytest.mark.parametrize("fmt", sorted(OTHER))
def test_formats_outside_the_product_are_never_decoded(fmt: str) -> None:
    with pytest.raises(InvalidImageError, match="JPEG, PNG, GIF, WebP, BMP") as info:
        decode_image(OTHER[fmt])
    if fmt in ("PSD", "JPEG2000", "EPS", "PCX", "QOI", "DDS"):  # recognisable by signature
        assert isinstance(info.value, UnsupportedImageFormatError)
        assert f"looks like a {fmt} image" in str(info.value)


def test_eps_never_reaches_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    def ghostscript(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript must never run on an upload")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    with pytest.raises(UnsupportedImageFormatError):
        decode_image(OTHER["EPS"])


def test_the_six_documented_formats_and_camera_mpo_decode() -> None:
    img = Image.new("RGB", (40, 30), (10, 200, 10))
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"):
        assert decode_image(encode(img, fmt)).size == (40, 30), fmt
    mpo = encode(img, "MPO", save_all=True, append_images=[img])
    assert probe_image(mpo).format == "MPO"
    assert decode_image(mpo).size == (40, 30)
    assert decode_image(mpo, draft_size=8).size == (20, 15)  # JPEG draft decoding applies


def test_webp_may_have_a_quarter_of_the_pixels() -> None:
    data = encode(Image.new("RGB", (2_000, 1_000)), "WEBP", lossless=True)
    assert probe_image(data, max_pixels=8_000_000).pixels == 2_000_000
    with pytest.raises(ImageTooLargeError, match="the limit for WEBP images is 1,750,000"):
        probe_image(data, max_pixels=7_000_000)


def test_reduced_decoding_keeps_what_the_model_sees(photos: dict[str, bytes]) -> None:
    """A 4x upscaled real photo as PNG: strip-wise reduction ≈ a full decode, after the preset."""
    cat = Image.open(io.BytesIO(photos["chelsea"])).convert("RGBA")
    big = encode(cat.resize((cat.width * 4, cat.height * 4), Image.Resampling.BICUBIC))
    cfg = PreprocessConfig()
    full = eval_preset(cfg)(decode_image(big))
    reduced_img = decode_image(big, draft_size=cfg.resize_size)
    assert min(reduced_img.size) >= cfg.resize_size and reduced_img.width < cat.width * 4
    reduced = eval_preset(cfg)(reduced_img)
    assert float((full - reduced).abs().mean()) < 0.02


def test_reduced_decoding_applies_exif_orientation_and_transparency() -> None:
    img = Image.new("RGBA", (1200, 600), (0, 0, 255, 0))  # transparent: white once composited
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    out = decode_image(encode(img, exif=exif.tobytes()), draft_size=100)
    assert out.width < out.height and min(out.size) >= 100
    assert out.getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (1200, 600), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert decode_image(encode(palette), draft_size=100).getpixel((3, 3)) == (255, 255, 255)
    bits = np.asarray(decode_image(encode(Image.new("1", (900, 600), 1)), draft_size=100))
    assert bits.min() == 255


# -- peak memory, measured as the process's RSS high-water mark ----------------------------------

PEAK_SCRIPT = """
import json, resource, sys
from pathlib import Path
from emojinet.errors import EmojiNetError
from emojinet.preprocess import PreprocessConfig, decode_image
from emojinet.presets import eval_preset

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

cfg = PreprocessConfig()
transform = eval_preset(cfg)
out = {}
for path in sys.argv[1:]:
    data = Path(path).read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # resets the high-water mark
    base = rss()
    try:
        transform(decode_image(data, draft_size=cfg.resize_size))
        result = "ok"
    except EmojiNetError as exc:
        result = type(exc).__name__
    out[Path(path).name] = [hwm() - base, result]
    del data
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_of_one_image_is_bounded(tmp_path: Path) -> None:
    """Absurd shapes cost nothing; a 40 MP PNG costs its decoded source (4 B a pixel) at most."""
    files = {f"{w}x1.png": strip_png(w) for w, _ in ABSURD}
    files["40mp.png"] = encode(Image.new("RGBA", (6_400, 6_250), (10, 20, 30, 128)))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, *(str(tmp_path / n) for n in files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peaks = json.loads(result.stdout)
    for w, _ in ABSURD:
        extra, outcome = peaks[f"{w}x1.png"]
        assert outcome == "ImageTooLargeError" and extra < 8 * MiB, (w, extra / MiB)
    extra, outcome = peaks["40mp.png"]
    assert outcome == "ok"
    assert extra < 4 * 40_000_000 + 32 * MiB, extra / MiB  # the bound the README states


def test_the_cli_reports_the_new_errors_per_file(tmp_path: Path, tiny_release: Path) -> None:
    (tmp_path / "layers.psd").write_bytes(psd())
    (tmp_path / "strip.png").write_bytes(strip_png(4000))
    (tmp_path / "ok.png").write_bytes(encode(Image.new("RGB", (80, 60), (0, 90, 200))))
    files = [str(tmp_path / n) for n in ("layers.psd", "strip.png", "ok.png")]
    args = ["suggest", *files, "--model", str(tiny_release), "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "emojinet", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # some files failed, the others were answered
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["image"]).name for line in lines] == ["layers.psd", "strip.png", "ok.png"]
    assert lines[0]["error"].startswith("the file looks like a PSD image, a format EmojiNet")
    assert "a 4,000:1 strip; the limit is 20:1" in lines[1]["error"]
    assert lines[2]["emojis"]
    assert f"{files[0]}: the file looks like a PSD image" in result.stderr
