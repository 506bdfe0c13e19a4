"""Per-emoji loss weights against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.weights import emoji_loss_weights, exp_smoothed_weights, tfidf_weights


def test_exp_smoothed_matches_the_formula() -> None:
    counts = [70, 20, 10]
    k = 5.0
    freq = [0.7, 0.2, 0.1]
    z = [math.exp(-k * f) for f in freq]
    expected = [v / sum(z) for v in z]
    got = exp_smoothed_weights(counts, k)
    assert got == pytest.approx(expected, rel=1e-12)
    assert sum(got) == pytest.approx(1.0)
    assert got[0] < got[1] < got[2]  # frequent emojis weigh less


def test_exp_smoothed_k_zero_is_uniform_and_large_k_is_stable() -> None:
    assert exp_smoothed_weights([5, 1, 1, 1], 0.0) == pytest.approx([0.25] * 4)
    w = exp_smoothed_weights([10**6, 1], 5000.0)  # exp(-5000) underflows without the shift
    assert w[1] == pytest.approx(1.0) and w[0] >= 0.0


def test_tfidf_matches_scikit_learn_idf() -> None:
    from sklearn.feature_extraction.text import TfidfTransformer

    y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]])
    expected = TfidfTransformer(smooth_idf=True).fit(y).idf_
    got = tfidf_weights(y.sum(0).tolist(), len(y))
    assert got == pytest.approx(expected.tolist())
    assert got[0] == pytest.approx(math.log(5 / 5) + 1)
    assert got[1] == pytest.approx(math.log(5 / 2) + 1)


@pytest.mark.parametrize("scheme", ["none", "tfidf", "exp"])
def test_loss_weights_have_mean_one_and_keep_ratios(scheme: str) -> None:
    df, n = [50, 30, 5, 1], 80
    w = emoji_loss_weights(scheme, df, n, k=3.0)
    assert np.mean(w) == pytest.approx(1.0)
    raw = {"none": [1.0] * 4, "tfidf": tfidf_weights(df, n), "exp": exp_smoothed_weights(df, 3.0)}[
        scheme
    ]
    assert np.array(w) / w[0] == pytest.approx(np.array(raw) / raw[0])


def test_unknown_scheme_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of none, tfidf, exp"):
        emoji_loss_weights("focal", [1], 1)
