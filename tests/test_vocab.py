import json
import subprocess
import sys
from pathlib import Path

import pytest

from emojinet.errors import VocabularyError
from emojinet.vocab import Vocabulary, all_emojis, current_emojis, normalize_emoji

ROOT = Path(__file__).resolve().parents[1]


def test_default_vocabulary_is_top_500_by_real_counts() -> None:
    v = Vocabulary.default()
    assert len(v) == 500
    assert v[0] == "😂" and v.counts[0] == 14622  # the ranking's most used emoji
    assert v[1] == "❤️"  # fully-qualified, with the unqualified ❤ merged into it
    assert list(v.counts) == sorted(v.counts, reverse=True)
    assert v.counts[-1] >= 10
    assert v.index("🍕") < v.index("🐶")  # 352 vs 148 occurrences
    assert v.name(0) == "face with tears of joy"


def test_default_vocabulary_file_is_reproduced_by_its_script(tmp_path: Path) -> None:
    out = tmp_path / "vocab.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_vocab.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    shipped = (ROOT / "emojinet" / "data" / "vocab_top500.json").read_text("utf-8")
    assert out.read_text("utf-8") == shipped


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("❤", "❤️"), ("❤️", "❤️"), ("☺", "☺️"), ("🐱", "🐱"), ("a", None), ("🐱🐶", None), ("", None)],
)
def test_normalize_emoji(raw: str, expected: str | None) -> None:
    assert normalize_emoji(raw) == expected


def test_skin_tone_folding() -> None:
    assert normalize_emoji("👍🏽") == "👍🏽"
    assert normalize_emoji("👍🏽", fold_skin_tone=True) == "👍"


def test_from_emojis_rejects_duplicates_after_normalisation() -> None:
    with pytest.raises(VocabularyError, match="duplicate emoji '❤️'"):
        Vocabulary.from_emojis(["❤", "❤️"])


def test_from_emojis_rejects_non_emojis() -> None:
    with pytest.raises(VocabularyError, match=r"entry 1 \('cat'\) is not an emoji"):
        Vocabulary.from_emojis(["🐱", "cat"])


def test_constructor_rejects_unqualified_with_hint() -> None:
    with pytest.raises(VocabularyError, match="did you mean '❤️'"):
        Vocabulary(("❤",))


def test_empty_and_mismatched_counts() -> None:
    with pytest.raises(VocabularyError, match="at least one emoji"):
        Vocabulary(())
    with pytest.raises(VocabularyError, match="2 emojis but 1 counts"):
        Vocabulary(("🐱", "🐶"), (3,))


@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    v = Vocabulary.from_emojis(["🍕", "🐱", "❤"], [5, 3, 1])
    path = tmp_path / f"vocab{suffix}"
    if suffix == ".json":
        v.save(path)
    else:
        path.write_text("# my emojis\n🍕\t5\n\n🐱\t3\n❤\t1\n", encoding="utf-8")
    back = Vocabulary.from_file(path)
    assert back == v
    assert back.to_list() == ["🍕", "🐱", "❤️"]
    assert back.counts == (5, 3, 1)
    assert [back.index(e) for e in back] == [0, 1, 2]
    assert back.index("❤") == 2  # any qualification finds the entry


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="cannot read vocabulary file"):
        Vocabulary.from_file(tmp_path / "missing.txt")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"wrong": []}))
    with pytest.raises(VocabularyError, match="expected JSON like"):
        Vocabulary.from_file(bad)
    bad_count = tmp_path / "bad.txt"
    bad_count.write_text("🐱\tmany\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"bad.txt:1: count 'many' is not an integer"):
        Vocabulary.from_file(bad_count)


def test_index_of_missing_emoji() -> None:
    with pytest.raises(VocabularyError, match="not in this vocabulary"):
        Vocabulary.from_emojis(["🐱"]).index("🐶")


def test_all_vocabulary_covers_every_current_emoji() -> None:
    v = Vocabulary.all()
    assert len(v) == len(current_emojis()) > len(all_emojis()) > 1400
    assert "🐱" in v and "☕" in v
    assert set(all_emojis()) <= set(v)
    # Newer than the usage counts (2015), still there: Emoji 11-16 and ZWJ sequences.
    for e in ("🦩", "🦦", "🦞", "🦉", "🦆", "🦍", "🦡", "🪻", "🪼", "🍋\u200d🟩", "🧑\u200d🚀"):
        assert e in v, e
    assert not any(
        ch in "\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff" for e in v for ch in e
    )
    assert v.counts[v.index("😂")] == 14622
    assert set(Vocabulary.default()) <= set(v)


def test_vocabulary_is_immutable_and_frequencies_are_smoothed() -> None:
    v = Vocabulary.from_emojis(["🐱", "🐶"], [3, 0])
    with pytest.raises(AttributeError):
        v.emojis = ("🐶",)  # type: ignore[misc]
    f = v.frequencies(smoothing=1.0)
    assert f == pytest.approx([4 / 5, 1 / 5])
    assert sum(f) == pytest.approx(1.0)
