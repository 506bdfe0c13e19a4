"""The quality benchmark's scoring on a tiny labelled set, against figures computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.suggestions import (
    LabelledImage,
    accepted_pairs,
    load_set,
    reliability,
    score_set,
)


def _images() -> list[LabelledImage]:
    return [
        LabelledImage(Path("cat.jpg"), ("🐈", "🐱"), "animals"),
        LabelledImage(Path("sea.jpg"), ("🌊",), "sea"),
        LabelledImage(Path("fog.jpg"), ("🌫️",), "sky"),
        LabelledImage(Path("dog.jpg"), ("🐕",), "animals"),
    ]


RANKED = [
    ["🐈", "🐯", "🦁", "🐆", "🐅"],  # top-1 hit
    ["🏖️", "⛵", "🌊", "🐚", "🐠"],  # top-5 hit (rank 2)
    ["☁", "🌧️", "⛈️", "🌩️", "🌫"],  # top-5 hit at rank 4, written without U+FE0F
    ["🐈", "🐩", "🐺", "🦊", "🐻"],  # a miss (🐕 is at rank 6)
]


def test_hit_rates_per_set_and_category() -> None:
    report = score_set(_images(), RANKED, [0.9, 0.4, 0.3, 0.8])
    assert report.n == 4
    assert report.top1 == pytest.approx(1 / 4)
    assert report.top5 == pytest.approx(3 / 4)
    assert report.per_category["animals"] == {"n": 2, "top1": 0.5, "top5": 0.5}
    assert report.per_category["sky"] == {"n": 1, "top1": 0.0, "top5": 1.0}


def test_worst_misses_are_the_confident_top5_misses() -> None:
    report = score_set(_images(), RANKED, [0.9, 0.4, 0.3, 0.8])
    assert [Path(m.file).name for m in report.worst_misses] == ["dog.jpg"]
    assert report.worst_misses[0].top_score == pytest.approx(0.8)
    assert report.worst_misses[0].suggested == RANKED[3]


def test_the_most_repeated_wrong_suggestion() -> None:
    # 🐕 is in three top-5s: accepted for dog.jpg, wrong for the cat and the sea: 2 of 4.
    ranked = [
        ["🐈", "🐕", "🦁", "🐆", "🐅"],
        ["🏖️", "🐕", "🌊", "🐚", "🐠"],
        ["☁", "🌧️", "⛈️", "🌩️", "🌫"],
        ["🐕", "🐩", "🐺", "🦊", "🐻"],
    ]
    report = score_set(_images(), ranked, [0.9, 0.4, 0.3, 0.8])
    assert report.repeated_wrong == ("🐕", pytest.approx(0.5))
    # Every wrong emoji once: the first of them, on 1 of 4.
    assert score_set(_images(), RANKED, [0.9, 0.4, 0.3, 0.8]).repeated_wrong == ("🐯", 0.25)


def test_reliability_bins_by_hand() -> None:
    # Two bins: scores 0.1, 0.2 (accepted once) and 0.8, 0.9 (accepted twice).
    r = reliability([0.1, 0.2, 0.8, 0.9], [True, False, True, True], bins=2)
    assert r.count == [2, 2]
    assert r.mean_score == pytest.approx([0.15, 0.85])
    assert r.accept_rate == pytest.approx([0.5, 1.0])
    # ECE = (2 * |0.5 - 0.15| + 2 * |1.0 - 0.85|) / 4 = 0.25
    assert r.ece == pytest.approx(0.25)


def test_accepted_pairs_flatten_top_k() -> None:
    scores = [[0.9, 0.1, 0.0, 0.0, 0.0]] * 4
    s, y = accepted_pairs(_images(), RANKED, scores, k=2)
    assert s.tolist() == [0.9, 0.1] * 4
    assert y.tolist() == [True, False, False, False, False, False, False, False]


def test_load_set_resolves_relative_paths_and_rejects_bad_entries(tmp_path: Path) -> None:
    good = tmp_path / "set.json"
    good.write_text(json.dumps([{"file": "a.jpg", "accept": ["🐈"], "category": "animals"}]))
    [entry] = load_set(good)
    assert entry.path == tmp_path / "a.jpg"
    assert entry.accept == ("🐈",)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"file": "a.jpg", "accept": []}]))
    with pytest.raises(ValueError, match="entry 0"):
        load_set(bad)
    bad.write_text(json.dumps({"file": "a.jpg"}))
    with pytest.raises(ValueError, match="JSON list"):
        load_set(bad)


def test_eval_dev_set_loads_when_present() -> None:
    path = Path(__file__).parents[1].parent / "shared" / "eval-dev" / "photos.json"
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    images = load_set(path)
    assert len(images) == 41
    assert all(im.path.is_file() for im in images)
    assert np.mean([len(im.accept) for im in images]) >= 1
