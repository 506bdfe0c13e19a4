"""Metrics of the distribution view (no torch): sampled emojis against the true label sets.

For one image the *true* distribution is uniform over its labelled emojis; over a set it is
the mean of those, i.e. the label frequency vector. The *sampled* distribution of an image is
the empirical frequency of its ``n`` draws; over a set, their mean.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "distinct_counts",
    "distribution_metrics",
    "draw_frequencies",
    "js_divergence",
    "mode_hits",
    "modes",
    "total_variation",
    "true_frequencies",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def _check_pair(p: Floats, q: Floats) -> tuple[Floats, Floats]:
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions must have the same shape, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum(-1).min() <= 0 or q.sum(-1).min() <= 0:
        raise ValueError("distributions must be non-negative with a positive sum")
    return p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)


def js_divergence(p: Floats, q: Floats) -> Floats:
    """Jensen–Shannon divergence in bits (0 = equal, 1 = disjoint supports), along the last axis.

    JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m) with m = (p + q) / 2; inputs are normalised first.
    """
    p, q = _check_pair(p, q)
    m = (p + q) / 2

    def kl(a: Floats) -> Floats:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        out: Floats = (a * np.log2(ratio)).sum(-1)
        return out

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def total_variation(p: Floats, q: Floats) -> Floats:
    """Total variation distance ½ Σ |p − q| in [0, 1], along the last axis (normalised first)."""
    p, q = _check_pair(p, q)
    out: Floats = 0.5 * np.abs(p - q).sum(-1)
    return out


def true_frequencies(targets: Floats) -> Floats:
    """(N, V) multi-hot labels → (N, V) per-image true distributions (uniform over the labels)."""
    t = np.asarray(targets, np.float64)
    counts = t.sum(1, keepdims=True)
    if (counts <= 0).any():
        raise ValueError("every image needs at least one true emoji")
    out: Floats = t / counts
    return out


def draw_frequencies(draws: Ints, vocab_size: int) -> Floats:
    """(N, n) vocabulary indices → (N, V) empirical frequencies (rows sum to 1)."""
    d = np.asarray(draws, np.int64)
    counts = np.zeros((d.shape[0], vocab_size), np.float64)
    np.add.at(counts, (np.arange(d.shape[0])[:, None], d), 1.0)
    out: Floats = counts / d.shape[1]
    return out


def modes(draws: Ints, vocab_size: int, tie_break: Floats | None = None) -> Ints:
    """(N, n) draws → (N,) the most drawn emoji of each row.

    Ties go to the emoji with the larger ``tie_break`` score (N, V) (e.g. the model's
    probabilities), else to the lower index.
    """
    counts = draw_frequencies(draws, vocab_size)
    if tie_break is not None:
        # Counts are multiples of 1/n; a score in [0, 1) scaled below 1/n only reorders ties.
        n = np.asarray(draws).shape[1]
        tb = np.asarray(tie_break, np.float64)
        span = max(float(tb.max() - tb.min()), 1e-12)
        counts = counts + (tb - tb.min()) / span * (0.5 / n)
    out: Ints = counts.argmax(1).astype(np.int64)
    return out


def mode_hits(mode: Ints, targets: Floats) -> npt.NDArray[np.bool_]:
    """(N,) modes, (N, V) multi-hot labels → (N,) whether the mode is one of the true emojis."""
    t = np.asarray(targets)
    hits: npt.NDArray[np.bool_] = t[np.arange(len(mode)), np.asarray(mode)] > 0
    return hits


def distinct_counts(draws: Ints) -> Ints:
    """(N, n) draws → (N,) number of distinct emojis per row (the mode-collapse indicator)."""
    d = np.sort(np.asarray(draws, np.int64), axis=1)
    out: Ints = 1 + (np.diff(d, axis=1) != 0).sum(1)
    return out


def distribution_metrics(
    draws: Ints, targets: Floats, tie_break: Floats | None = None
) -> dict[str, float]:
    """Aggregate and per-image metrics of ``n`` draws per image against the true labels.

    Args:
        draws: (N, n) vocabulary indices drawn for each image.
        targets: (N, V) multi-hot true labels.
        tie_break: (N, V) scores to break ties between equally drawn emojis.

    Returns:
        ``js`` and ``tv`` between the set's true label frequencies and its sampled frequencies;
        ``js_per_image`` (mean over images); ``mode_hit_rate``; ``distinct_mean`` and
        ``distinct_max`` (distinct emojis in the n draws of one image); ``modes_distinct``
        (distinct modes over the set: 1 means every image got the same emoji, i.e. collapse);
        ``n_images`` and ``n_draws``.
    """
    t = np.asarray(targets, np.float64)
    vocab_size = t.shape[1]
    freq = draw_frequencies(draws, vocab_size)  # (N, V)
    truth = true_frequencies(t)  # (N, V)
    mode = modes(draws, vocab_size, tie_break)
    distinct = distinct_counts(draws)
    return {
        "js": float(js_divergence(truth.mean(0), freq.mean(0))),
        "tv": float(total_variation(truth.mean(0), freq.mean(0))),
        "js_per_image": float(js_divergence(truth, freq).mean()),
        "mode_hit_rate": float(mode_hits(mode, t).mean()),
        "distinct_mean": float(distinct.mean()),
        "distinct_max": int(distinct.max()),
        "modes_distinct": len(np.unique(mode)),
        "n_images": int(t.shape[0]),
        "n_draws": int(np.asarray(draws).shape[1]),
    }
