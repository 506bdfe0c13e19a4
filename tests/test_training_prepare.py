"""`emojinet prepare`: manifests, filters, labelled folders, Fashion-MNIST, splits, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from training_data import fashion_dataset, fashion_root

from emojinet.cli import main as cli_main
from emojinet.vocab import Vocabulary
from training.errors import ManifestError
from training.fashion_mnist import EMOJIS, prepare_fashion_mnist
from training.posts import Post, folder_posts, read_posts
from training.prepare import FilterConfig, PrepareReport, assign_split, filter_posts, read_dataset

NO_CHECK = FilterConfig(cap_per_emoji=None, check_images=False)


def _post(i: int, caption: str, **kw: object) -> Post:
    return Post(id=f"p{i}", image=Path(f"/nonexistent/{i}.jpg"), caption=caption, **kw)  # type: ignore[arg-type]


def _run(
    posts: list[Post], cfg: FilterConfig = NO_CHECK, **kw: object
) -> tuple[list[Post], PrepareReport]:
    report = PrepareReport()
    kept, _ = filter_posts(posts, cfg, report=report, **kw)  # type: ignore[arg-type]
    return kept, report


@pytest.fixture
def photo_files(tmp_path: Path) -> list[Path]:
    import skimage.data as sd

    paths = []
    for name in ("chelsea", "coffee", "rocket"):
        p = tmp_path / f"{name}.jpg"
        Image.fromarray(getattr(sd, name)()).save(p, quality=85)
        paths.append(p)
    return paths


# -- each filter ------------------------------------------------------------------------------


def test_filter_max_hashtags() -> None:
    posts = [
        _post(1, "🐱 #a #b #c #d #e"),
        _post(2, "🐱 #a #b #c #d #e #f"),
        _post(3, "🐶", hashtags=list("abcdef")),
    ]
    kept, report = _run(posts)
    assert [p.id for p in kept] == ["p1"]
    assert report.dropped == {"too_many_hashtags": 2}
    kept, _ = _run(posts, FilterConfig(max_hashtags=None, cap_per_emoji=None, check_images=False))
    assert len(kept) == 3


def test_filter_no_emoji() -> None:
    kept, report = _run([_post(1, "just words #cat"), _post(2, "a cat 🐱")])
    assert [p.id for p in kept] == ["p2"] and report.dropped == {"no_emoji": 1}
    assert report.examples["no_emoji"] == ["p1"]


def test_filter_emoji_must_appear_in_caption() -> None:
    posts = [
        _post(1, "my cat 🐱", emoji="🐱"),
        _post(2, "my dog 🐶", emoji="🐱"),
        _post(3, "👍🏽", emoji="👍"),
    ]
    kept, report = _run(posts)
    assert sorted(p.id for p in kept) == ["p1", "p3"] and report.dropped == {
        "emoji_not_in_caption": 1
    }
    off = FilterConfig(require_emoji_in_caption=False, cap_per_emoji=None, check_images=False)
    assert len(_run(posts, off)[0]) == 3


def test_filter_vocabulary_top_n_and_given() -> None:
    posts = [_post(i, "🐱") for i in range(3)] + [_post(3, "🐶🐱"), _post(4, "🍕")]
    kept, report = _run(posts, FilterConfig(top_n=1, cap_per_emoji=None, check_images=False))
    assert sorted(p.id for p in kept) == ["p0", "p1", "p2", "p3"]
    assert all(p.labels == ["🐱"] for p in kept)
    assert report.dropped == {"not_in_vocabulary": 1}
    kept, _ = _run(posts, vocab=Vocabulary.from_emojis(["🍕", "🐶"]))
    assert sorted(p.id for p in kept) == ["p3", "p4"]


def test_filter_cap_per_emoji_is_deterministic_and_multilabel_aware() -> None:
    posts = [_post(i, "🐱") for i in range(10)] + [_post(10, "🐱🐶")]
    cfg = FilterConfig(cap_per_emoji=4, check_images=False)
    kept, report = _run(posts, cfg, seed=1)
    assert sum("🐱" in p.labels for p in kept) >= 4
    assert sum(p.labels == ["🐱"] for p in kept) <= 4
    assert "p10" in [p.id for p in kept]  # 🐶 is still under its cap
    assert report.dropped["cap_per_emoji"] == 11 - len(kept)
    again, _ = _run([_post(i, "🐱") for i in range(10)] + [_post(10, "🐱🐶")], cfg, seed=1)
    assert [p.id for p in again] == [p.id for p in kept]


def test_missing_and_unreadable_images_are_reported_not_fatal(
    tmp_path: Path, photo_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    posts = [
        Post("ok", photo_files[0], "🐱"),
        Post("gone", tmp_path / "gone.jpg", "🐱"),
        Post("broken", broken, "🐱"),
    ]
    kept, report = _run(posts, FilterConfig())
    assert [p.id for p in kept] == ["ok"]
    assert report.dropped == {"missing_image": 1, "unreadable_image": 1}
    assert "gone" in caplog.text and "broken" in caplog.text


def test_splits_are_deterministic_by_id() -> None:
    splits = [assign_split(f"post{i}", 7, 0.1, 0.2) for i in range(2000)]
    assert splits == [assign_split(f"post{i}", 7, 0.1, 0.2) for i in range(2000)]
    assert 0.15 < splits.count("test") / 2000 < 0.25 and 0.06 < splits.count("val") / 2000 < 0.14
    assert splits != [assign_split(f"post{i}", 8, 0.1, 0.2) for i in range(2000)]


# -- manifests and their errors ---------------------------------------------------------------


def test_jsonl_and_csv_manifests_end_to_end(tmp_path: Path, photo_files: list[Path]) -> None:
    rows = [
        {"id": "a", "image": photo_files[0].name, "caption": "my cat 🐱 #cat", "emoji": "🐱"},
        {"id": "b", "image": photo_files[1].name, "caption": "coffee ☕ and 🐱"},
        {"id": "c", "image": photo_files[2].name, "caption": "launch 🚀 #a #b #c #d #e #f"},
        {"id": "d", "image": "missing.jpg", "caption": "🐱"},
    ]
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    out = tmp_path / "ds"
    assert (
        cli_main(
            [
                "prepare",
                "--manifest",
                str(jsonl),
                "--out",
                str(out),
                "--val-fraction",
                "0",
                "--test-fraction",
                "0",
            ]
        )
        == 0
    )
    records, vocab = read_dataset(out)
    assert {r.id: r.emojis for r in records} == {"a": ["🐱"], "b": ["☕", "🐱"]}
    assert vocab.emojis[0] == "🐱" and vocab.counts[0] == 2
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["dropped"] == {"missing_image": 1, "too_many_hashtags": 1}
    assert json.loads((out / "label_counts.json").read_text(encoding="utf-8"))["train"]["🐱"] == 2
    assert (out / records[0].image).is_file() or Path(records[0].image).is_file()

    csv_file = tmp_path / "posts.csv"
    csv_file.write_text(
        "id,image_path,text,hashtags\n"
        f"a,{photo_files[0].name},my cat 🐱,cat pets\n"
        f'b,{photo_files[1].name},"coffee, ☕",\n',
        encoding="utf-8",
    )
    posts = read_posts(csv_file)
    assert [p.hashtags for p in posts] == [["cat", "pets"], None]
    assert posts[1].caption == "coffee, ☕" and posts[0].image == photo_files[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.jsonl", '{"image": "a.jpg"}\n', r"lacks column\(s\) caption"),
        ("m.jsonl", '{"caption": "🐱"}\n', r"lacks column\(s\) image"),
        (
            "m.jsonl",
            '{"image": "a.jpg", "caption": "🐱"}\n{not json\n',
            r"m.jsonl:2: not valid JSON",
        ),
        ("m.jsonl", '["a.jpg", "🐱"]\n', "expected a JSON object"),
        ("m.jsonl", "\n\n", "holds no posts"),
        ("m.csv", "path,title\na.jpg,🐱\n", r"lacks column\(s\) caption"),
        (
            "m.jsonl",
            '{"id": 1, "image": "a", "caption": "x"}\n{"id": 1, "image": "b", "caption": "y"}\n',
            "duplicate id '1' \\(first on line 1\\)",
        ),
    ],
)
def test_bad_manifests_fail_with_clear_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        read_posts(path)


def test_missing_manifest_and_no_emojis_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        read_posts(tmp_path / "nope.jsonl")
    path = tmp_path / "m.jsonl"
    path.write_text('{"image": "a.jpg", "caption": "no emoji"}\n', encoding="utf-8")
    assert cli_main(["prepare", "--manifest", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no emoji is left after filtering 1 posts" in err and "no_emoji" in err


# -- labelled folders and Fashion-MNIST -------------------------------------------------------


def test_folder_tree_with_emoji_and_name_folders(tmp_path: Path, photo_files: list[Path]) -> None:
    root = tmp_path / "tree"
    for folder, src in (
        ("🐱", photo_files[0]),
        ("hot_beverage", photo_files[1]),
        ("rocket", photo_files[2]),
    ):
        (root / folder).mkdir(parents=True)
        (root / folder / src.name).write_bytes(src.read_bytes())
    posts = folder_posts(root)
    assert sorted(p.labels[0] for p in posts) == sorted(["🐱", "☕", "🚀"])
    kept, _ = _run(posts, FilterConfig())
    assert len(kept) == 3
    (root / "not an emoji name").mkdir()
    with pytest.raises(ManifestError, match="neither emojis nor emoji names"):
        folder_posts(root)


def test_fashion_mnist_from_idx_files(tmp_path: Path) -> None:
    out = fashion_dataset(tmp_path, n_train=100, n_test=40)
    records, vocab = read_dataset(out)
    assert len(vocab) == 9 and vocab.emojis == tuple(dict.fromkeys(EMOJIS))
    assert sum(r.split == "test" for r in records) == 40
    assert {r.split for r in records if r.id.startswith("train-")} == {"train", "val"}
    d = np.load(Path(__file__).parent / "data" / "fashion_mnist_300.npz")
    first = next(r for r in records if r.id == "test-00000")
    assert first.emojis == [EMOJIS[int(d["test_labels"][0])]]
    img = np.asarray(Image.open(out / first.image))
    assert img.shape == (28, 28) and (img == d["test_images"][0]).all()
    # Pullover (2) and Coat (4) share 🧥.
    labels = {
        int(y): r.emojis[0]
        for y, r in zip(
            d["train_labels"][:100],
            sorted((r for r in records if r.id.startswith("train-")), key=lambda r: r.id),
            strict=True,
        )
    }
    assert labels.get(2, "🧥") == labels.get(4, "🧥") == "🧥"


def test_fashion_mnist_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="apt-get install dataset-fashion-mnist"):
        prepare_fashion_mnist(tmp_path / "o", root=tmp_path / "none")
    root = fashion_root(tmp_path)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"\0\0\x08\x03garbage")
    with pytest.raises(ManifestError, match="expected"):
        prepare_fashion_mnist(tmp_path / "o2", root=root)
