"""The weak picture-name labeller (training/names.py) on real openclipart-png paths: folder and
file words, other languages, folder senses, flags, vetoes, false friends; and its agreement with
the hand-checked benchmark set (benchmarks/sets/openclipart.json)."""

from __future__ import annotations

import json
from pathlib import Path

import emoji
import pytest

from training.clipart import FILE_LABELS
from training.names import CLDR_DIR, cldr_keywords, name_labels, parse_emojis, tokenise

SET = Path(__file__).resolve().parents[1] / "benchmarks" / "sets" / "openclipart.json"


def _labels(rel_path: str) -> tuple[str, ...]:
    return name_labels(rel_path).emojis


def test_tokenise_splits_separators_digits_and_camel_case() -> None:
    assert tokenise("az-lizard_benji.park2") == ["az", "lizard", "benji", "park"]
    assert tokenise("Tacchino_di_NataleLadyBug") == ["tacchino", "di", "natale", "lady", "bug"]
    assert tokenise("Pâté_01") == ["pate"]


@pytest.mark.parametrize(
    ("rel_path", "expected"),
    [
        # the file name names the thing, the folder adds its own name, like a hashtag
        ("animals/birds/owl_on_branch_ganson.png", ("🦉", "🐦")),
        # words after a preposition still count ("cake and candle" names both)
        ("food/cake_and_candle_anton_fr_01.png", ("🍰", "🎂", "🕯️")),
        # Italian and German names, singular forms
        ("animals/bugs/coccinella_architetto_fr_01.png", ("🐞",)),
        ("animals/eule_01.png", ("🦉",)),
        ("animals/mammals/horses/cavalli.png", ("🐎", "🐴")),
        # a word's sense depends on the folder
        ("computer/hardware/mouse.png", ("🖱️",)),
        ("animals/mammals/mouse.png", ("🐁", "🐭")),
        ("food/fruit/tile_orange_01.png", ("🍊",)),
        # words after an author's name are the author's ("pear_jean-victor_balin": no 👖)
        ("food/fruit/pear_jean-victor_balin_01.png", ("🍐",)),
        # a flag needs a flags folder and the place's whole name
        ("signs_and_symbols/flags/europe/germany/germany.png", ("🇩🇪",)),
    ],
)
def test_name_labels_gives_every_emoji_the_path_names(
    rel_path: str, expected: tuple[str, ...]
) -> None:
    assert _labels(rel_path) == expected


@pytest.mark.parametrize(
    ("rel_path", "expected"),
    [
        ("computer/green_thing.png", ()),  # a category folder names nothing
        ("food/meats_and_eggs/bacon.png", ("🥓",)),  # "x and y" folders neither
        ("signs_and_symbols/flags/america/canada/canada_manitoba.png", ()),  # a region's flag
        ("geography/australia_01.png", ()),  # a map, not a flag
        ("signs_and_symbols/flags/signalflag_golf.png", ()),  # vetoed phrase: no ⛳
        ("unsorted/van_gogh_s_sun_flower_en_01.png", ("🌻",)),  # false friend: no 🚐
        ("tools/paint_roller_gerald_g._01.png", ()),  # false friend: no 🎢
        ("office/menu_example1.png", ()),
    ],
)
def test_name_labels_stays_honest(rel_path: str, expected: tuple[str, ...]) -> None:
    assert _labels(rel_path) == expected


def test_labels_are_fully_qualified_emojis_without_tones() -> None:
    for rel in ("people/thumb_up.png", "animals/birds/owl_on_branch_ganson.png"):
        for char in _labels(rel):
            assert emoji.EMOJI_DATA[char]["status"] == emoji.STATUS["fully_qualified"]
            assert not any(0x1F3FB <= ord(c) <= 0x1F3FF for c in char)


@pytest.mark.skipif(
    not (CLDR_DIR / "annotations" / "en.xml").is_file(),
    reason="Debian unicode-cldr-core is not installed",
)
def test_cldr_keywords_name_at_most_two_emojis() -> None:
    keywords = cldr_keywords()
    assert keywords[("wise",)] == ("🦉",)  # 🦉's keywords: "bird | owl | wise"
    assert ("bird",) not in keywords  # the keyword of dozens of birds names none of them
    assert all(1 <= len(v) <= 2 for v in keywords.values())
    assert _labels("animals/wise_old_one.png") == ("🦉",)


def test_weak_labels_agree_with_the_hand_checked_set() -> None:
    """On the 1,313 hand-checked pictures (paths only: the package need not be installed), the
    weak labels contain an accepted emoji for ≥ 99% and add others (folder names) for ≤ 10%."""
    entries = json.loads(SET.read_text(encoding="utf-8"))
    agree = extra = 0
    for entry in entries:
        rel = entry["file"].split("/openclipart/png/", 1)[1]
        labels = parse_emojis(FILE_LABELS[rel]) if rel in FILE_LABELS else _labels(rel)
        agree += bool(set(labels) & set(entry["accept"]))
        extra += bool(set(labels) - set(entry["accept"]))
    assert len(entries) > 1000
    assert agree / len(entries) >= 0.99
    assert extra / len(entries) <= 0.10
