"""`emojinet prescale`: parallel, draft-mode resizing that is idempotent and resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from emojinet.cli import main as cli_main
from training.datasets import prescaled_index
from training.posts import folder_posts
from training.prepare import FilterConfig, filter_posts, write_dataset
from training.prepare import PrepareReport as Report
from training.prescale import prescale_dataset


@pytest.fixture
def photo_dataset(tmp_path: Path, photos: dict[str, bytes]) -> Path:
    """Real photos (512 px and up) plus one tiny image, as a labelled-folder data set."""
    root = tmp_path / "tree"
    (root / "🐱").mkdir(parents=True)
    (root / "📷").mkdir()
    for name, data in photos.items():
        (root / ("🐱" if name == "chelsea" else "📷") / f"{name}.jpg").write_bytes(data)
    Image.new("RGB", (20, 30), "red").save(root / "📷" / "tiny.png")
    report = Report()
    posts, vocab = filter_posts(folder_posts(root), FilterConfig(), report=report)
    out = tmp_path / "ds"
    write_dataset(out, posts, vocab, report, val_fraction=0.0, test_fraction=0.0)
    return out


def test_prescale_resizes_links_small_images_and_is_idempotent(photo_dataset: Path) -> None:
    assert (
        cli_main(["prescale", "--data", str(photo_dataset), "--size", "64", "--workers", "2"]) == 0
    )
    index = prescaled_index(photo_dataset, 64)
    assert index is not None and len(index) == 7
    for post_id, rel in index.items():
        with Image.open(photo_dataset / rel) as img:
            if post_id.endswith("tiny.png"):
                assert img.size == (20, 30) and rel.endswith(".png")  # never upscaled
            else:
                assert min(img.size) == 64 and img.format == "JPEG"
    with Image.open(photo_dataset / index["🐱/chelsea.jpg"]) as img:
        assert img.size == (96, 64)  # 451×300 keeps its aspect ratio
    again = prescale_dataset(photo_dataset, 64, workers=1, progress=False)
    assert (again.total, again.skipped, again.resized) == (7, 7, 0)


def test_prescale_resumes_after_an_interrupted_run(photo_dataset: Path) -> None:
    first = prescale_dataset(photo_dataset, 48, workers=2, progress=False)
    assert (first.resized, first.linked, first.failed) == (6, 1, 0)
    out = photo_dataset / "prescaled" / "48"
    # Simulate a crash: the index was never written and one output is missing.
    (out / "index.json").unlink()
    done = sorted(p for p in out.rglob("*.jpg"))
    done[0].unlink()
    resumed = prescale_dataset(photo_dataset, 48, workers=2, progress=False)
    assert (resumed.resized, resumed.skipped) == (1, 6)
    assert prescaled_index(photo_dataset, 48) is not None


def test_prescaled_images_are_what_training_reads(photo_dataset: Path) -> None:
    from emojinet.preprocess import PreprocessConfig
    from emojinet.presets import eval_preset
    from training.datasets import EmojiImageDataset
    from training.prepare import read_dataset

    prescale_dataset(photo_dataset, 40, workers=1, progress=False)
    records, vocab = read_dataset(photo_dataset)
    tf = eval_preset(PreprocessConfig(32, 40))
    ds = EmojiImageDataset(
        photo_dataset, records, vocab, tf, prescaled=prescaled_index(photo_dataset, 40)
    )
    assert "prescaled/40" in ds.path(0).as_posix()
    x, y, i = ds[0]
    assert x.shape == (3, 32, 32) and y.sum() == 1 and i == 0


def test_names_with_dots_keep_their_own_prescaled_file(tmp_path: Path) -> None:
    """``king_jr._h_01.png`` and ``king_jr._h_02.png`` must not share ``king_jr.jpg``."""
    root = tmp_path / "tree" / "🐱"
    root.mkdir(parents=True)
    colours = {"king_jr._h_01.png": "red", "king_jr._h_02.png": "blue"}
    for name, colour in colours.items():
        Image.new("RGB", (600, 400), colour).save(root / name)
    report = Report()
    posts, vocab = filter_posts(folder_posts(root.parent), FilterConfig(), report=report)
    ds = tmp_path / "ds"
    write_dataset(ds, posts, vocab, report, val_fraction=0.0, test_fraction=0.0)
    prescale_dataset(ds, size=64, workers=1)
    index = prescaled_index(ds, 64)
    assert index is not None and len(set(index.values())) == 2
    reds = [
        Image.open(ds / path if not Path(path).is_absolute() else path)
        .convert("RGB")
        .getpixel((0, 0))
        for path in sorted(index.values())
    ]
    assert {r[0] > 200 for r in reds} == {True, False}  # one red picture, one blue
