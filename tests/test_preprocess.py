import io

import numpy as np
import pytest
import torch
from PIL import Image

from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.preprocess import PreprocessConfig, decode_image, eval_array, load_image
from emojinet.presets import eval_preset, to_tensor_batch, train_preset


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGB", "JPEG"),
        ("L", "PNG"),
        ("P", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("I;16", "PNG"),
        ("I", "TIFF"),
        ("F", "TIFF"),
        ("1", "PNG"),
        ("RGB", "WEBP"),
    ],
)
def test_every_mode_decodes_to_rgb(mode: str, fmt: str) -> None:
    img = Image.new(mode, (40, 30))
    out = decode_image(encode(img, fmt))
    assert out.mode == "RGB"
    assert out.size == (40, 30)


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    assert decode_image(encode(rgba)).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (8, 8), (0, 128))  # half-transparent black
    r, g, b = decode_image(encode(half)).getpixel((0, 0))
    assert 120 <= r <= 135 and r == g == b
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0] * 256)
    p.info["transparency"] = 0
    assert decode_image(encode(p)).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_rescaled_not_clipped() -> None:
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    out = np.asarray(decode_image(encode(Image.fromarray(arr))))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255 and 120 < out[1, 0, 0] < 135


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 60)


def test_animated_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    r, _, b = decode_image(buf.getvalue()).getpixel((5, 5))
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not an image"),
        (b"%PDF-1.4\n", "not an image"),
    ],
)
def test_bad_bytes_raise_invalid_image(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        decode_image(data)


def test_truncated_jpeg_raises_invalid_image(photos: dict[str, bytes]) -> None:
    data = photos["chelsea"]
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_pixel_limit_and_decompression_bomb() -> None:
    with pytest.raises(ImageTooLargeError, match="limit is 100 pixels"):
        decode_image(encode(Image.new("L", (11, 10))), max_pixels=100)
    # A 20,000 x 20,000 PNG compresses to a few hundred KB; it must be refused before decoding.
    bomb = encode(Image.new("1", (20_000, 20_000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        decode_image(bomb)
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        decode_image(bomb, max_pixels=10**12)  # PIL's own bomb guard is the second line
    # Under PIL's guard but over ours: refused from the header, before any pixel is decoded.
    big = encode(Image.new("1", (8_000, 6_000)))
    with pytest.raises(ImageTooLargeError, match="8000x6000 = 48,000,000 pixels"):
        decode_image(big)


def test_load_image_missing_file(tmp_path: object) -> None:
    with pytest.raises(InvalidImageError, match="cannot read"):
        load_image("/nonexistent/photo.jpg")


def test_jpeg_draft_mode_keeps_at_least_the_requested_size(photos: dict[str, bytes]) -> None:
    full = decode_image(photos["chelsea"])
    small = decode_image(photos["chelsea"], draft_size=64)
    assert min(small.size) >= 64
    assert small.size[0] < full.size[0]


def test_presets_shapes_and_normalisation(photos: dict[str, bytes]) -> None:
    cfg = PreprocessConfig(input_size=96, resize_size=110)
    img = decode_image(photos["coffee"])
    x = eval_preset(cfg)(img)
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32
    assert torch.equal(x, eval_preset(cfg)(img))  # eval is deterministic
    torch.manual_seed(0)
    y = train_preset(cfg)(img)
    assert y.shape == (3, 96, 96)
    assert float(x.min()) > -3 and float(x.max()) < 3
    batch = to_tensor_batch([img, img], cfg)
    assert batch.shape == (2, 3, 96, 96)


def test_unknown_interpolation_lists_choices() -> None:
    with pytest.raises(ValueError, match="choose one of nearest"):
        eval_preset(PreprocessConfig(interpolation="cubic-ish"))


def test_preprocess_config_round_trip() -> None:
    cfg = PreprocessConfig(128, 146, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bicubic")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "cfg",
    [
        PreprocessConfig(),  # ImageNet: short side 256, centre 224
        PreprocessConfig(crop="full", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),  # built-in
        PreprocessConfig(96, 110, interpolation="bicubic"),
        PreprocessConfig(64, 73),  # odd margins: the centre crop's rounding
    ],
)
@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_numpy_eval_matches_torchvision(
    photos: dict[str, bytes], name: str, cfg: PreprocessConfig
) -> None:
    """Serving's Pillow + numpy preprocessing is the torchvision preset, to one grey level."""
    for img in (decode_image(photos[name]), decode_image(photos[name]).rotate(90, expand=True)):
        got = eval_array(img, cfg)
        want = eval_preset(cfg)(img).numpy()
        assert got.shape == want.shape == (3, cfg.input_size, cfg.input_size)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        diff = np.abs(got - want)
        assert diff.max() <= 1.01 / 255 / min(cfg.std)  # one grey level, after normalising
        assert diff.mean() < 0.25 / 255 / min(cfg.std)  # most values equal, few off by one


def test_numpy_eval_refuses_unknown_interpolation(photos: dict[str, bytes]) -> None:
    with pytest.raises(ValueError, match="unknown interpolation 'cubic-ish'"):
        eval_array(decode_image(photos["coffee"]), PreprocessConfig(interpolation="cubic-ish"))
