"""The Python API (``emojinet.suggest`` / ``distribution`` / ``load``) on real photos.

The built-in model, ONNX Runtime on the CPU, scikit-image's photos and the sample photo shipped
in the package; the api module's docstring examples run as doctests.
"""

from __future__ import annotations

import doctest
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emojinet
import emojinet.api
from emojinet.api import Suggester, Suggestions
from emojinet.errors import ImageTooLargeError, InvalidImageError, SamplingError
from emojinet.sampling import Distribution

CATS = {"🐈", "🐱", "🐈\u200d⬛", "🙀", "😹", "😺", "😸", "😻", "😼", "😽", "😾", "😿"}


@pytest.fixture(scope="module")
def suggester() -> Suggester:
    """The module-level functions' own cached model: one load for the whole file."""
    return emojinet.api._default(None, None, None)


def test_import_is_cheap_and_exports_the_api() -> None:
    code = (
        "import sys, emojinet\n"
        "heavy = ('torch', 'onnxruntime', 'numpy', 'PIL', 'emojinet.predictor')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(sorted(emojinet.__all__))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == [
        "[]",
        "['__version__', 'distribution', 'load', 'sample_photo', 'suggest']",
    ]
    assert emojinet.__version__ == "0.1.0"


def test_package_is_typed() -> None:
    assert (Path(emojinet.__file__).parent / "py.typed").is_file()


def test_sample_photo_is_a_small_jpeg_with_its_licence() -> None:
    path = emojinet.sample_photo()
    assert path.is_file() and path.stat().st_size < 60_000
    with Image.open(path) as img:
        assert (img.format, img.size) == ("JPEG", (451, 300))
    notice = (path.parent / "sample.txt").read_text(encoding="utf-8")
    assert "CC0" in notice and "Stefan van der Walt" in notice


def test_doctests_pass(suggester: Suggester) -> None:
    for module in (emojinet.api, emojinet):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
    assert doctest.testmod(emojinet.api).attempted >= 15


def test_chelsea_gets_cats_and_coffee_gets_hot_beverage(photos: dict[str, bytes]) -> None:
    cat, coffee = emojinet.suggest([photos["chelsea"], photos["coffee"]], top_k=5)
    assert cat[0].emoji in CATS and cat[0].name == "cat"
    assert len(set(cat.emojis) & CATS) >= 2 and cat[1].score > 3 * cat[2].score  # then guesses
    assert "☕" in coffee.emojis and not set(coffee.emojis) & CATS


def test_path_bytes_pil_and_array_agree(photo_dir: Path, suggester: Suggester) -> None:
    path = photo_dir / "coffee.jpg"
    with Image.open(path) as img:
        pil = img.copy()
    inputs = [path, str(path), path.read_bytes(), pil, np.asarray(pil)]
    results = suggester.suggest(inputs, top_k=5)
    assert [len(r) for r in results] == [5] * 5
    first = results[0]
    # The very same bytes (rows of one batch may differ in the last float bit), then pixels
    # decoded, re-encoded losslessly and decoded again.
    for r, atol in zip(results[1:], [1e-6, 1e-6, 1e-5, 1e-5], strict=True):
        assert r.emojis == first.emojis
        np.testing.assert_allclose([s.score for s in r], [s.score for s in first], atol=atol)


def test_grayscale_and_rgba_arrays(photos: dict[str, bytes], suggester: Suggester) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(photos["chelsea"])).convert("RGB"))
    gray = rgb.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    g, a = suggester.suggest([gray, rgba], top_k=5)
    assert set(g.emojis) & CATS and a.emojis == suggester.suggest(rgb).emojis


def test_one_photo_gives_one_result_a_list_gives_a_list(photos: dict[str, bytes]) -> None:
    one = emojinet.suggest(photos["chelsea"], top_k=3)
    assert isinstance(one, Suggestions) and len(one) == 3
    many = emojinet.suggest((photos["chelsea"],), top_k=3)
    assert isinstance(many, list) and many == [one]
    assert emojinet.suggest([]) == []
    scores = [s.score for s in one]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert repr(one).startswith("[🐈 cat 0.") and "cat face" in repr(one)
    assert emojinet.suggest(photos["chelsea"], top_k=50, threshold=0.15).emojis == [
        s.emoji for s in emojinet.suggest(photos["chelsea"], top_k=50) if s.score >= 0.15
    ]


def test_module_functions_reuse_one_model_per_setting(suggester: Suggester) -> None:
    assert emojinet.api._default(None, None, None) is suggester
    assert emojinet.api._default(None, "onnx", "cpu") is emojinet.api._default(None, "onnx", "cpu")
    assert emojinet.api._default(None, "onnx", "cpu") is not suggester
    assert suggester.info.backend == "onnx" and suggester.info.device == "cpu"  # auto on a CPU
    assert "🐈" in suggester.vocab and len(suggester.vocab) == suggester.info.vocab_size
    assert repr(suggester).startswith("<emojinet.Suggester 'emojinet-zeroshot': ")


def test_load_returns_a_reusable_model(photos: dict[str, bytes]) -> None:
    loaded = emojinet.load(backend="onnx", device="cpu")
    assert isinstance(loaded, Suggester) and loaded is not emojinet.api._default(None, None, None)
    first = loaded.suggest(photos["coffee"])
    assert loaded.suggest(photos["coffee"]) == first and "☕" in first.emojis
    assert loaded.distribution(photos["coffee"], n=20, seed=3).n == 20


def test_distribution(photos: dict[str, bytes]) -> None:
    d = emojinet.distribution(photos["chelsea"], n=200, seed=7)
    assert isinstance(d, Distribution) and d.n == 200 and len(d.samples) == 200
    assert sum(c for _, c in d.histogram) == 200
    assert sum(c / d.n for _, c in d.histogram) == pytest.approx(1.0)
    assert 0 < sum(f for _, f in d.top_k) <= 1.0
    assert emojinet.distribution(photos["chelsea"], n=200, seed=7).samples == d.samples
    sharp = emojinet.distribution(photos["chelsea"], n=100, temperature=0.1, seed=0)
    assert sharp.mode == "🐈" and sharp.entropy < d.entropy
    cat, coffee = emojinet.distribution([photos["chelsea"], photos["coffee"]], n=50, seed=1)
    assert coffee.mode == "☕" or "☕" in dict(coffee.histogram)
    assert cat.samples == emojinet.distribution(photos["chelsea"], n=50, seed=1).samples


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (b"not an image", InvalidImageError, "the data is not an image"),
        (b"", InvalidImageError, "the image is empty"),
        (Path("/nonexistent/photo.jpg"), InvalidImageError, "cannot read /nonexistent/photo.jpg"),
        (np.zeros((8, 8, 3), np.float32), InvalidImageError, "must be uint8"),
        (np.zeros((2, 8, 8, 3), np.uint8), InvalidImageError, "(H, W, 3)"),
        (42, InvalidImageError, "cannot read a int as a photo"),
        (Image.new("L", (30_000, 10)), ImageTooLargeError, "may be at most 20,000 pixels"),
    ],
)
def test_bad_input_raises_a_clear_error(image: object, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        emojinet.suggest(image)  # type: ignore[call-overload]


def test_bad_arguments() -> None:
    photo = emojinet.sample_photo()
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        emojinet.suggest(photo, top_k=0)
    with pytest.raises(SamplingError, match="n must be at least 1"):
        emojinet.distribution(photo, n=0)
