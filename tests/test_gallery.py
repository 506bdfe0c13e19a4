"""``emojinet gallery`` on real photos (scikit-image, scikit-learn) with the built-in model."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emojinet.cli import main
from emojinet.errors import ConfigError
from emojinet.gallery import GalleryConfig, GalleryResult, build_gallery
from emojinet.gallery_cards import EMOJI_FONT, render_emoji
from emojinet.predictor import Predictor
from emojinet.vocab import Vocabulary

pytestmark = pytest.mark.slow

SKIMAGE_PHOTOS = (
    "chelsea", "coffee", "rocket", "astronaut", "hubble_deep_field", "immunohistochemistry",
    "camera", "coins", "clock", "moon", "colorwheel",
)  # fmt: skip
CFG = GalleryConfig(top_n=4, per_image=5, batch_size=8, progress=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """13 real photos (one in a subfolder) and one file that is not an image."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    root = tmp_path_factory.mktemp("photos")
    for name in SKIMAGE_PHOTOS:
        img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        img.save(root / f"{name}.jpg", quality=90)
    (root / "sklearn").mkdir()
    sample = load_sample_images()
    for filename, array in zip(sample.filenames, sample.images, strict=True):
        Image.fromarray(array).save(root / "sklearn" / Path(filename).name, quality=90)
    (root / "notes.jpg").write_bytes(b"not a photo at all")
    (root / "readme.txt").write_text("ignored: not an image suffix")
    return root


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(None, backend="torch", device="cpu")


@pytest.fixture(scope="module")
def report(
    photos: Path, predictor: Predictor, tmp_path_factory: pytest.TempPathFactory
) -> GalleryResult:
    return build_gallery(photos, predictor, tmp_path_factory.mktemp("report"), CFG)


def gallery_json(result: GalleryResult) -> dict:
    return json.loads((result.out / "gallery.json").read_text(encoding="utf-8"))


def test_cat_photo_leads_a_cat_emoji(report: GalleryResult) -> None:
    data = gallery_json(report)
    paths = [im["path"] for im in data["images"]]
    emojis = {e["emoji"]: e for e in data["emojis"]}

    def leader(photo: str) -> dict:
        """The photo's top emoji, which must in turn rank the photo first."""
        top = data["images"][paths.index(photo)]["emojis"][0]["emoji"]
        entry = emojis[top]
        assert paths[entry["top"][0]["image"]] == photo, (photo, entry)
        return entry

    cat = leader("chelsea.jpg")
    assert "cat" in cat["name"], cat  # 🐈 cat with the built-in model
    assert cat["card"] is not None and (report.out / cat["card"]).is_file()
    assert leader("coffee.jpg")["emoji"] == "☕"


def test_report_lists_every_image_and_emoji(report: GalleryResult, photos: Path) -> None:
    data = gallery_json(report)
    assert len(data["images"]) == 14 and report.scored == 14 and report.cached == 0
    assert "sklearn/china.jpg" in {im["path"] for im in data["images"]}
    assert report.unreadable == [photos / "notes.jpg"]
    notes = next(im for im in data["images"] if im["path"] == "notes.jpg")
    assert notes["emojis"] == []  # listed, but never ranked
    assert len(data["emojis"]) == len(Vocabulary.all())  # the built-in model's vocabulary
    for entry in data["emojis"]:
        assert len(entry["top"]) <= CFG.top_n
        scores = [t["score"] for t in entry["top"]]
        assert scores == sorted(scores, reverse=True)
        assert all(data["images"][t["image"]]["path"] != "notes.jpg" for t in entry["top"])
    assert sum(e["leads"] for e in data["emojis"]) == 13  # one top emoji per readable image
    assert not notes["readable"] and all(im["readable"] for im in data["images"] if im != notes)
    for im in data["images"][:3]:
        with Image.open(report.out / im["thumb"]) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= CFG.thumb_size


def test_index_html_is_self_contained_with_search_and_sort(report: GalleryResult) -> None:
    page = (report.out / "index.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page  # no network
    assert 'id="q"' in page and 'type="search"' in page
    assert 'value="leads"' in page and 'value="in_top_k"' in page
    marker = '<script type="application/json" id="data">'
    start = page.index(marker) + len(marker)
    data = json.loads(page[start : page.index("</script>", start)])
    assert data == gallery_json(report)


def test_rows_are_not_padded_with_images_under_the_minimum_score(
    report: GalleryResult, predictor: Predictor, photos: Path, tmp_path: Path
) -> None:
    """The cat photo is the only one the model ties to 🐈 (the others score 3% or less)."""
    data = gallery_json(report)
    paths = [im["path"] for im in data["images"]]
    assert data["min_score"] == CFG.min_score == 0.05
    cat = next(e for e in data["emojis"] if e["emoji"] == "🐈")
    assert [paths[t["image"]] for t in cat["top"]] == ["chelsea.jpg"]
    for entry in data["emojis"]:
        assert all(t["score"] >= 0.05 for t in entry["top"])
    for im in data["images"]:
        assert all(e["score"] >= 0.05 for e in im["emojis"])
    bare = [e for e in data["emojis"] if not e["top"]]
    assert len(bare) > 0.8 * len(data["emojis"])  # most of the ~1,900 emojis fit no photo
    assert all(e["leads"] == e["in_top_k"] == 0 for e in bare)
    # Not vacuous: with no minimum the cat row is padded with photos under the minimum.
    shutil.copy(report.out / "scores.npz", tmp_path / "scores.npz")
    every = dataclasses.replace(CFG, min_score=0.0)
    again = build_gallery(photos, predictor, tmp_path, every)
    assert again.scored == 0  # the same scores, from the cache
    padded = next(e for e in gallery_json(again)["emojis"] if e["emoji"] == "🐈")
    assert len(padded["top"]) == CFG.top_n and padded["top"][-1]["score"] < CFG.min_score
    with pytest.raises(ConfigError, match=r"min_score must be in \[0, 1\], got 1.5"):
        GalleryConfig(min_score=1.5)


@pytest.mark.skipif(not EMOJI_FONT.is_file(), reason="needs Debian's fonts-noto-color-emoji")
def test_emoji_cards_are_pngs_with_the_emoji_and_top_images(report: GalleryResult) -> None:
    assert report.cards
    shown = {e["card"]: len(e["top"]) for e in gallery_json(report)["emojis"] if e["card"]}
    assert len(shown) == len(report.cards)
    for card in report.cards:
        n = min(CFG.card_images, shown[f"cards/{card.name}"])  # images at the minimum score
        with Image.open(card) as img:
            assert img.format == "PNG"
            assert img.size == (220 + n * (180 + 16) + 16, 180 + 30 + 32)
            assert card.stat().st_size < 300_000
    cat = next(c for c in report.cards if c.name == "cat-1f408.png")
    with Image.open(cat) as img:
        head = np.asarray(img.convert("RGB").crop((40, 26, 180, 160)), dtype=np.int32)
    # Noto's cat is orange: many saturated pixels where the emoji is drawn.
    assert ((head[..., 0] - head[..., 2]) > 100).sum() > 1000
    glyph = render_emoji("🍕", 64)
    assert glyph.size == (64, 64) and glyph.mode == "RGBA"
    assert np.asarray(glyph)[..., 3].max() == 255


def test_second_run_reads_the_score_cache(
    report: GalleryResult, photos: Path, predictor: Predictor
) -> None:
    again = build_gallery(photos, predictor, report.out, CFG)
    assert (again.scored, again.cached) == (0, 14)
    np.testing.assert_array_equal(again.scores, report.scores)
    # A changed file (new mtime) is rescored; the others still come from the cache.
    st = (photos / "coffee.jpg").stat()
    os.utime(photos / "coffee.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert build_gallery(photos, predictor, report.out, CFG).scored == 1
    # Another model (sha256) invalidates every cached row.
    other = copy.copy(predictor)
    other.info = dataclasses.replace(predictor.info, sha256="0" * 64)
    assert build_gallery(photos, other, report.out, CFG).scored == 14


def test_cli_writes_a_report(
    tiny_release: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["gallery", str(photos), "--model", str(tiny_release), "--out", str(out)]
    rc = main([*argv, "--backend", "torch", "--device", "cpu", "--top-n", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "14 images: 14 scored, 0 from the cache" in captured.out
    assert "could not read" in captured.err and "notes.jpg" in captured.err
    data = json.loads((out / "gallery.json").read_text(encoding="utf-8"))
    assert data["model"]["name"] == "test-tiny" and len(data["emojis"]) == 5
    assert all(len(e["top"]) == 3 for e in data["emojis"])
    assert (out / "index.html").is_file() and (out / "scores.npz").is_file()
    rc = main([*argv, "--backend", "torch", "--device", "cpu", "--no-progress"])
    assert rc == 0 and "0 scored, 14 from the cache" in capsys.readouterr().out
    # --min-score: the least score shown; the tiny model's best score leaves every row empty.
    best = max(e["top"][0]["score"] for e in data["emojis"])
    rc = main([*argv, "--backend", "torch", "--no-progress", "--min-score", f"{best + 1e-4}"])
    data = json.loads((out / "gallery.json").read_text(encoding="utf-8"))
    assert rc == 0 and data["min_score"] == pytest.approx(best + 1e-4)
    assert all(e["top"] == [] for e in data["emojis"])
    assert all(im["emojis"] == [] for im in data["images"])
    with pytest.raises(SystemExit):
        main([*argv, "--min-score", "1.5"])
    assert "--min-score: must be between 0.0 and 1.0, got 1.5" in capsys.readouterr().err


def test_cli_rejects_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["gallery", str(tmp_path / "nope"), "--model", "x", "--out", str(tmp_path)])
    assert rc == 2
    assert "is not a directory" in capsys.readouterr().err
