"""Evaluation metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    average_precision,
    evaluate_scores,
    precision_recall_at_k,
    top_k_hit_rate,
)

SCORES = np.array(
    [
        [0.9, 0.8, 0.1],  # true {0}: ranks 0,1,2
        [0.2, 0.7, 0.6],  # true {2}
        [0.3, 0.4, 0.5],  # true {0, 1}
        [0.6, 0.1, 0.2],  # true {}: ignored by the per-image metrics
    ]
)
TARGETS = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]])


def test_average_precision_by_hand() -> None:
    # Emoji 0: scores 0.9(+) 0.6(-) 0.3(+) 0.2(-): precision at the hits 1/1 and 2/3.
    assert average_precision(SCORES[:, 0], TARGETS[:, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # Emoji 1: 0.8(-) 0.7(-) 0.4(+) 0.1(-): 1/3.
    assert average_precision(SCORES[:, 1], TARGETS[:, 1]) == pytest.approx(1 / 3)
    # Emoji 2: 0.6(+) ...: 1.
    assert average_precision(SCORES[:, 2], TARGETS[:, 2]) == pytest.approx(1.0)
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_average_precision_matches_scikit_learn_with_ties() -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 5, 40) / 4  # many ties
        t = rng.integers(0, 2, 40)
        if t.sum() == 0:
            continue
        assert average_precision(s, t) == pytest.approx(average_precision_score(t, s))


def test_precision_recall_at_k_by_hand() -> None:
    # top-1: [0], [1], [2] → hits 1, 0, 0 over the 3 labelled images.
    assert precision_recall_at_k(SCORES, TARGETS, 1) == pytest.approx((1 / 3, 1 / 3))
    # top-2: {0,1} hits 1 of 1; {1,2} hits 1 of 1; {2,1} hits 1 of 2.
    p, r = precision_recall_at_k(SCORES, TARGETS, 2)
    assert p == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)
    assert r == pytest.approx((1 + 1 + 1 / 2) / 3)


def test_top_k_hit_rate_by_hand() -> None:
    assert top_k_hit_rate(SCORES, TARGETS, 1) == pytest.approx(1 / 3)
    assert top_k_hit_rate(SCORES, TARGETS, 2) == pytest.approx(1.0)


def test_evaluate_scores_macro_micro_and_per_emoji() -> None:
    from sklearn.metrics import average_precision_score

    m = evaluate_scores(SCORES, TARGETS, ["a", "b", "c"])
    assert m["mAP_macro"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3 + 1) / 3)
    assert m["mAP_micro"] == pytest.approx(average_precision_score(TARGETS.ravel(), SCORES.ravel()))
    assert m["per_emoji_AP"]["b"] == pytest.approx(1 / 3)
    assert m["per_emoji_support"] == {"a": 2, "b": 1, "c": 1}
    assert m["top1"] == pytest.approx(1 / 3) and m["top5"] == pytest.approx(1.0)
    assert m["n_images"] == 4


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"must both be \(N, V\)"):
        evaluate_scores(np.zeros((2, 3)), np.zeros((2, 4)))
