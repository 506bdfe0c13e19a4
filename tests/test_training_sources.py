"""`emojinet prepare` with several sources: clip art (Debian openclipart-png), the emoji pictures
(npm emoji-datasource-*, Noto Color Emoji), Fashion-MNIST, a holdout; vocabulary ranking, caps,
unlabelled pictures, splits, the per-source report and the errors. Real pictures only: tests
skip when a Debian or npm resource is missing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from training_data import fashion_root

from emojinet.cli import main as cli_main
from emojinet.gallery_cards import EMOJI_FONT
from training.clipart import ROOT as CLIPART
from training.clipart import clipart_source
from training.datasets import select_split, targets_matrix
from training.emoji_images import noto_source, vendor_source
from training.errors import ManifestError
from training.posts import Post
from training.prepare import FilterConfig, read_dataset
from training.sources import MixConfig, Source, mix_sources, rank_vocabulary, split_caps

NPM_APPLE = Path(__file__).resolve().parents[1] / "data" / "npm" / "apple" / "package"
needs_clipart = pytest.mark.skipif(
    not CLIPART.is_dir(), reason="apt-get install openclipart-png for the clip art tests"
)
needs_npm = pytest.mark.skipif(
    not (NPM_APPLE / "emoji.json").is_file(),
    reason="npm emoji-datasource-apple is not unpacked in data/npm/apple (make data-emoji500)",
)
PICTURES = {  # real openclipart-png pictures → what their paths name
    "animals/birds/owl_on_branch_ganson.png": ["🦉", "🐦"],
    "food/fruit/apple.png": ["🍎"],
    "food/desserts/pie_cherry.png": ["🥧"],
    "computer/hardware/mouse.png": ["🖱️"],
    "tools/smoke_nicu_buculei_01.png": [],  # names no emoji
    "computer/icons/70a001.png": None,  # an icon: not a depiction
}
VENDOR = {"1F600": "😀", "1F989": "🦉", "1F34E": "🍎", "1F44D": "👍", "1F46B": "👫"}


@pytest.fixture
def clipart_tree(tmp_path: Path) -> Path:
    """A small tree of real clip art, plus a byte-identical copy of the owl and of the apple."""
    if not CLIPART.is_dir():
        pytest.skip("apt-get install openclipart-png for the clip art tests")
    root = tmp_path / "clipart"
    for rel in PICTURES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CLIPART / rel, root / rel)
    (root / "unsorted").mkdir()
    shutil.copyfile(CLIPART / "animals/birds/owl_on_branch_ganson.png", root / "unsorted/x.png")
    shutil.copyfile(CLIPART / "food/fruit/apple.png", root / "unsorted/pomme_verte.png")
    return root


@pytest.fixture
def vendor_package(tmp_path: Path) -> Path:
    """A package folder like ``npm pack emoji-datasource-apple``'s, holding five real entries."""
    if not (NPM_APPLE / "emoji.json").is_file():
        pytest.skip("npm emoji-datasource-apple is not unpacked in data/npm/apple")
    table = json.loads((NPM_APPLE / "emoji.json").read_text(encoding="utf-8"))
    chosen = [e for e in table if e["unified"] in VENDOR]
    pkg = tmp_path / "apple" / "package"
    (pkg / "img" / "apple" / "64").mkdir(parents=True)
    (pkg / "emoji.json").write_text(json.dumps(chosen), encoding="utf-8")
    for entry in chosen:
        for v in [entry, *entry.get("skin_variations", {}).values()]:
            src = NPM_APPLE / "img" / "apple" / "64" / v["image"]
            shutil.copyfile(src, pkg / "img" / "apple" / "64" / v["image"])
    return tmp_path / "apple"


# -- the sources one by one -------------------------------------------------------------------


def test_clipart_source_labels_skips_and_merges_copies(clipart_tree: Path) -> None:
    src = clipart_source(clipart_tree)
    labels = {p.id.removeprefix("clipart/"): p.labels for p in src.posts}
    want = {rel: emojis for rel, emojis in PICTURES.items() if emojis is not None}
    want["food/fruit/apple.png"] = ["🍎", "🍏"]  # its copy "pomme_verte" adds green apple
    assert labels == want
    assert src.read.read == len(PICTURES) + 2
    assert src.read.dropped == {"non_depiction_folder": 1, "duplicate": 2}
    assert all(p.key == hashlib.sha256(p.image.read_bytes()).hexdigest() for p in src.posts)


def test_clipart_source_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="apt-get install openclipart-png"):
        clipart_source(tmp_path / "none")


def test_vendor_source_folds_skin_tones_to_the_base_emoji(vendor_package: Path) -> None:
    src = vendor_source(vendor_package)
    assert src.name == "apple" and not src.evidence and not src.capped
    by_label: dict[str, int] = {}
    for p in src.posts:
        by_label[p.labels[0]] = by_label.get(p.labels[0], 0) + 1
        assert p.split == "train" and p.image.is_file()
    assert by_label["😀"] == by_label["🦉"] == 1
    assert by_label["👍"] == 6  # the base and five tones
    assert by_label["👫"] == 26  # five tones and the twenty mixed-tone couples
    with Image.open(src.posts[0].image) as img:
        assert img.size == (64, 64)


def test_vendor_source_refuses_a_folder_that_is_no_package(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="npm pack emoji-datasource-apple"):
        vendor_source(tmp_path)
    (tmp_path / "package" / "img" / "apple" / "64").mkdir(parents=True)
    (tmp_path / "package" / "emoji.json").write_text('{"not": "a list"}', encoding="utf-8")
    with pytest.raises(ManifestError, match="not emoji-datasource's table"):
        vendor_source(tmp_path)


@pytest.mark.skipif(not EMOJI_FONT.is_file(), reason="apt-get install fonts-noto-color-emoji")
def test_noto_source_renders_once(tmp_path: Path) -> None:
    src = noto_source(tmp_path, emojis=["🦉", "🧑‍🚀"])
    assert [p.labels for p in src.posts] == [["🦉"], ["🧑‍🚀"]]
    owl = src.posts[0].image
    assert owl == tmp_path / "images" / "noto" / "1f989.png"
    with Image.open(owl) as img:
        assert img.size == (64, 64) and img.getbbox() is not None
    before = owl.stat().st_mtime_ns
    assert noto_source(tmp_path, emojis=["🦉"]).posts[0].image.stat().st_mtime_ns == before


# -- mixing: vocabulary, caps, unlabelled -----------------------------------------------------


def _post(i: int, labels: list[str], image: Path, split: str = "train", src: str = "") -> Post:
    return Post(f"{src}{i}", image, labels=labels, split=split)


def test_rank_vocabulary_evidence_first_then_the_usage_prior(tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    posts = [_post(0, ["🦉"], img), _post(1, ["🦉"], img), _post(2, ["😂", "🍕"], img)]
    posts += [_post(3, ["🦉"], img, split="val")]  # val does not count
    vendor = [_post(i, ["🐙"], img, src="v") for i in range(5)]  # many, but not evidence
    for p in posts:
        p.source = "clip"
    for p in vendor:
        p.source = "vendor"
    vocab = rank_vocabulary(posts + vendor, {"clip"}, top_n=10)
    assert vocab.emojis == ("🦉", "😂", "🍕", "🐙")  # 😂 (14,622 uses) before 🍕 (352)
    assert rank_vocabulary(posts + vendor, {"clip"}, top_n=2).emojis == ("🦉", "😂")


def test_caps_in_train_and_a_share_in_val(tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    stars = Source.of("clip", [Post(f"s{i}", img, labels=["⭐"]) for i in range(400)])
    fixed = Source.of("fixed", [Post(f"f{i}", img, labels=["⭐"]) for i in range(30)])
    fixed.capped = False
    filters = FilterConfig(cap_per_emoji=20, check_images=False)
    cfg = MixConfig(filters, val_fraction=0.1, test_fraction=0.0)
    assert split_caps(cfg) == {"train": 20, "val": 3, "test": 1}
    kept, _, report = mix_sources([stars, fixed], cfg)
    clip = [p.split for p in kept if p.source == "clip"]
    assert clip.count("train") == 20 and clip.count("val") == 3
    assert sum(p.source == "fixed" for p in kept) == 30  # not capped
    assert report.sources["clip"].dropped == {"cap_per_emoji": 377}


def test_duplicate_ids_across_sources_fail_clearly(tmp_path: Path) -> None:
    a = Source.of("a", [Post("p1", tmp_path / "x.png", labels=["⭐"])])
    b = Source.of("b", [Post("p1", tmp_path / "y.png", labels=["⭐"])])
    with pytest.raises(ManifestError, match="'p1' is in both a and b"):
        mix_sources([a, b], MixConfig(FilterConfig(check_images=False)))


# -- the command, end to end ------------------------------------------------------------------


def _prepare(tmp: Path, *extra: str) -> int:
    return cli_main(["prepare", "--out", str(tmp / "ds"), "--seed", "3", *extra])


@needs_clipart
@needs_npm
def test_prepare_mixes_clipart_emoji_pictures_fashion_and_a_holdout(
    tmp_path: Path, clipart_tree: Path, vendor_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holdout = tmp_path / "holdout.json"
    apple = str(clipart_tree / "food/fruit/apple.png")
    holdout.write_text(json.dumps([{"file": apple, "accept": ["🍎", "🍏"]}]), encoding="utf-8")
    root = fashion_root(tmp_path, n_train=60, n_test=20)
    args = ["--clipart", str(clipart_tree), "--emoji-images", str(vendor_package)]
    args += ["--fashion-mnist", "--fashion-mnist-root", str(root), "--fashion-mnist-per-class", "3"]
    args += ["--holdout", str(holdout), "--keep-unlabelled", "--top-n", "20", "--val-fraction", "0"]
    args += ["--test-fraction", "0"]
    assert _prepare(tmp_path, *args) == 0
    records, vocab = read_dataset(tmp_path / "ds")
    by_id = {r.id: r for r in records}
    # the holdout picture is test only, with its accepted emojis; its copy is in no split
    assert by_id[f"holdout/{apple}"].split == "test"
    assert by_id[f"holdout/{apple}"].emojis == ["🍎"]  # 🍏: not in the vocabulary
    assert not {"clipart/food/fruit/apple.png", "clipart/unsorted/pomme_verte.png"} & set(by_id)
    # clip art: weak labels; the picture that names nothing stays in train, unlabelled
    assert by_id["clipart/animals/birds/owl_on_branch_ganson.png"].emojis == ["🦉", "🐦"]
    assert by_id["clipart/tools/smoke_nicu_buculei_01.png"].emojis == []
    assert {r.split for r in records if r.source == "apple"} == {"train"}
    # the vocabulary: clip art and Fashion-MNIST evidence first, then emojis only vendors draw
    evidence = {e for r in records if r.source in ("clipart", "fashion-mnist") for e in r.emojis}
    ranked = list(vocab.emojis)
    assert set(ranked[: len(evidence)]) == evidence and "😀" in ranked[len(evidence) :]
    # no picture is in train and test
    digests: dict[str, set[str]] = {}
    for r in records:
        path = Path(r.image) if Path(r.image).is_absolute() else tmp_path / "ds" / r.image
        digests.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), set()).add(r.split)
    assert all(len(splits) == 1 for splits in digests.values())
    # the trainer's reading: unlabelled records are left out unless asked for
    train = select_split(records, "train")
    assert all(r.emojis for r in train)
    everything = select_split(records, "train", unlabelled=True)
    assert len(everything) == len(train) + 1
    assert targets_matrix(everything, vocab).sum(1).min() == 0
    report = json.loads((tmp_path / "ds" / "report.json").read_text(encoding="utf-8"))
    assert set(report["sources"]) == {"clipart", "apple", "fashion-mnist", "holdout"}
    assert report["sources"]["clipart"]["dropped"] == {
        "duplicate": 2,
        "in_holdout": 1,
        "non_depiction_folder": 1,
    }
    assert report["sources"]["clipart"]["unlabelled"] == 1
    fashion = report["sources"]["fashion-mnist"]
    assert fashion["splits"]["val"] == 0 and fashion["splits"]["test"] == 18  # 20, ≤ 3 a class
    assert fashion["read"] == fashion["kept"] == fashion["splits"]["train"] + 18
    out = capsys.readouterr().out
    assert "clipart: read 8, kept 4 (1 unlabelled)" in out


@needs_clipart
def test_prepare_drops_unlabelled_clipart_by_default(tmp_path: Path, clipart_tree: Path) -> None:
    assert _prepare(tmp_path, "--clipart", str(clipart_tree), "--test-fraction", "0") == 0
    records, _ = read_dataset(tmp_path / "ds")
    assert all(r.emojis for r in records)
    report = json.loads((tmp_path / "ds" / "report.json").read_text(encoding="utf-8"))
    assert report["dropped"]["names_no_emoji"] == 1
    assert report["examples"]["names_no_emoji"] == ["clipart/tools/smoke_nicu_buculei_01.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one source"),
        (["--clipart", "{tmp}/none"], "apt-get install openclipart-png"),
        (["--emoji-images", "{tmp}"], "not an unpacked emoji-datasource package"),
        (["--folder", "{tmp}/f", "--holdout", "{tmp}/h.json"], "cannot read the holdout"),
        (["--folder", "{tmp}/f", "--holdout", "{tmp}/bad.json"], "entry 0 accepts"),
        (["--folder", "{tmp}/f", "--val-fraction", "0.5", "--test-fraction", "0.5"], "below 1"),
        (["--folder", "{tmp}/f", "--emoji-images", "{tmp}/f"], "emoji-datasource package"),
    ],
)
def test_prepare_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "f" / "🐱").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "f" / "🐱" / "a.png")
    bad = [{"file": str(tmp_path / "f" / "🐱" / "a.png"), "accept": ["cat"]}]
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    assert _prepare(tmp_path, *(a.format(tmp=tmp_path) for a in args)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
