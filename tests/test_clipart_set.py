"""The openclipart development set: its builder's word matching and the committed JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import emoji
import pytest

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "benchmarks" / "sets" / "openclipart.json"
Lexicon = dict[tuple[str, ...], tuple[str, ...]]


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    path = ROOT / "scripts" / "build_clipart_set.py"
    spec = importlib.util.spec_from_file_location("build_clipart_set", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lexicon(builder: ModuleType) -> Lexicon:
    table: Lexicon = builder.build_lexicon()
    return table


def _accept(builder: ModuleType, lexicon: Lexicon, rel_path: str) -> list[str] | None:
    found = builder.label(rel_path, lexicon)
    return None if found is None else list(found.emojis)


def test_tokenise_splits_separators_digits_and_camel_case(builder: ModuleType) -> None:
    assert builder.tokenise("owl_01") == ["owl"]
    assert builder.tokenise("az-lizard_benji.park2") == ["az", "lizard", "benji", "park"]
    assert builder.tokenise("Tacchino_di_NataleLadyBug") == [
        "tacchino",
        "di",
        "natale",
        "lady",
        "bug",
    ]
    assert builder.tokenise("Pinguino1") == ["pinguino"]


@pytest.mark.parametrize(
    ("rel_path", "first"),
    [
        ("animals/birds/owl_01.png", "🦉"),
        ("animals/birds/owl_on_branch_ganson.png", "🦉"),  # "on branch" only qualifies
        ("animals/bugs/coccinella_architetto_fr_01.png", "🐞"),  # Italian name
        ("animals/bugs/ladybug_02.png", "🐞"),
        ("animals/mammals/tigre01_architetto_franc_01.png", "🐅"),
        ("computer/hardware/mouse.png", "🖱️"),  # folder sense
        ("animals/mammals/mouse.png", "🐁"),
        ("animals/mammals/dogs/bobi_architetto_francesc_01.png", "🐕"),  # folder default
        ("signs_and_symbols/flags/europe/germany/germany.png", "🇩🇪"),
        ("people/smilies/smiley115.png", "😴"),  # labelled by eye
        ("food/desserts/pie_cherry.png", "🥧"),
    ],
)
def test_label_names_the_depicted_thing(
    builder: ModuleType, lexicon: Lexicon, rel_path: str, first: str
) -> None:
    accept = _accept(builder, lexicon, rel_path)
    assert accept is not None and accept[0] == first, accept


def test_label_lists_related_emojis(builder: ModuleType, lexicon: Lexicon) -> None:
    assert _accept(builder, lexicon, "transportation/vehicles/car.png") == ["🚗", "🚘"]
    assert _accept(builder, lexicon, "food/fruit/apple.png") == ["🍎", "🍏"]
    assert _accept(builder, lexicon, "animals/mammals/cartoon_cat_gerald_g._01.png") == ["🐈", "🐱"]


@pytest.mark.parametrize(
    "rel_path",
    [
        "office/menu_example1.png",  # no emoji word
        "food/bread_and_wine_mark_near_.png",  # two things
        "geography/australia_01.png",  # a map, not a flag
        "signs_and_symbols/flags/europe/germany/germany_bavaria.png",  # a region's flag
        "food/desserts/glace_01_jean-victor_bal_01.png",  # vetoed: ice lollies
        "computer/keyboard_key_yemu.png",  # vetoed phrase
        "recreation/sports/badminton_racket_brice_b_01.png",  # blank on white
    ],
)
def test_label_drops_unclear_pictures(builder: ModuleType, lexicon: Lexicon, rel_path: str) -> None:
    assert _accept(builder, lexicon, rel_path) is None


def test_committed_set_is_well_formed() -> None:
    entries = json.loads(SET.read_text(encoding="utf-8"))
    assert isinstance(entries, list) and len(entries) >= 300
    files = [e["file"] for e in entries]
    assert files == sorted(files) and len(set(files)) == len(files)
    for entry in entries:
        assert set(entry) == {"file", "accept", "category", "words"}, entry
        assert entry["accept"] and len(set(entry["accept"])) == len(entry["accept"]), entry
        for char in entry["accept"]:
            assert emoji.EMOJI_DATA[char]["status"] == emoji.STATUS["fully_qualified"], char
        assert entry["file"].split("/openclipart/png/", 1)[1].startswith(entry["category"] + "/")


def test_rebuilding_reproduces_the_committed_set(builder: ModuleType) -> None:
    if not builder.ROOT.is_dir():
        pytest.skip(f"{builder.ROOT} is missing: apt-get install openclipart-png to rebuild")
    text = json.dumps(builder.collect(builder.ROOT), ensure_ascii=False, indent=1) + "\n"
    assert text == SET.read_text(encoding="utf-8")
