"""Per-emoji loss weights (no torch): none, tf-idf, or exponentially smoothed frequencies."""

from __future__ import annotations

import math
from collections.abc import Sequence

from training.errors import DataError, OptionsError

__all__ = ["WEIGHT_SCHEMES", "emoji_loss_weights", "exp_smoothed_weights", "tfidf_weights"]

WEIGHT_SCHEMES = ("none", "tfidf", "exp")


def exp_smoothed_weights(counts: Sequence[int], k: float) -> list[float]:
    """EmojiGAN eq. 2: w(e) = exp(−k·freq(e)) / Σᵢ exp(−k·freq(eᵢ)), freq(e) = count(e)/Σ counts.

    The weights sum to 1; frequent emojis get less weight, more so for larger ``k``.
    """
    total = sum(counts)
    if total <= 0:
        raise DataError("exp-smoothed weights need at least one labelled example")
    freqs = [c / total for c in counts]
    # Subtracting the smallest exponent's offset keeps exp() in range and cancels in the ratio.
    m = min(freqs)
    z = [math.exp(-k * (f - m)) for f in freqs]
    s = sum(z)
    return [v / s for v in z]


def tfidf_weights(doc_freq: Sequence[int], n_docs: int) -> list[float]:
    """Smoothed inverse document frequency: idf(e) = ln((1 + N) / (1 + df(e))) + 1.

    A post's multi-hot target is a binary "document" of emojis (tf = 1 for each emoji it has),
    so the tf-idf weight of an emoji is its idf; this is scikit-learn's ``smooth_idf`` formula.
    """
    if n_docs <= 0:
        raise DataError("tf-idf weights need at least one labelled example")
    return [math.log((1 + n_docs) / (1 + df)) + 1.0 for df in doc_freq]


def emoji_loss_weights(
    scheme: str, doc_freq: Sequence[int], n_docs: int, *, k: float = 10.0
) -> list[float]:
    """Loss weights for a scheme, rescaled to mean 1 so the learning rate keeps its meaning.

    Args:
        scheme: ``"none"``, ``"tfidf"`` or ``"exp"``.
        doc_freq: number of training posts that carry each emoji.
        n_docs: number of training posts.
        k: sharpness of the ``"exp"`` scheme.
    """
    if scheme == "none":
        raw = [1.0] * len(doc_freq)
    elif scheme == "tfidf":
        raw = tfidf_weights(doc_freq, n_docs)
    elif scheme == "exp":
        raw = exp_smoothed_weights(doc_freq, k)
    else:
        raise OptionsError(
            f"unknown loss weighting {scheme!r}; choose one of {', '.join(WEIGHT_SCHEMES)}"
        )
    mean = sum(raw) / len(raw)
    return [w / mean for w in raw]
