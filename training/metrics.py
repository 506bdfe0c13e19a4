"""Multi-label ranking metrics (numpy only): mAP, precision/recall@k, top-k hits, per-emoji AP."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "average_precision",
    "evaluate_scores",
    "precision_recall_at_k",
    "precision_recall_curve",
    "scalars",
    "top_k_hit_rate",
]

FloatArray = npt.NDArray[np.float64]


def scalars(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers among ``metrics`` (what checkpoints and releases store), names prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, float | int)}


def _check(scores: npt.ArrayLike, targets: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores {s.shape} and targets {t.shape} must both be (N, V)")
    return s, t


def average_precision(scores: npt.ArrayLike, targets: npt.ArrayLike) -> float:
    """AP of one ranking: mean over positives of the precision at each positive's rank.

    Ties are broken pessimistically-free as in scikit-learn: tied scores form one threshold.
    Returns NaN when there is no positive.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(targets, dtype=np.float64).ravel() > 0
    n_pos = int(t.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    # Thresholds at the last index of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0.0, tp]) / n_pos
    return float(np.sum(precision * recall_gain))


def precision_recall_curve(
    scores: npt.ArrayLike, targets: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Micro-averaged (over all emojis) precision and recall at every distinct threshold."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(targets, dtype=np.float64).ravel() > 0
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last]
    return tp / (last + 1), tp / max(int(t.sum()), 1)


def precision_recall_at_k(
    scores: npt.ArrayLike, targets: npt.ArrayLike, k: int
) -> tuple[float, float]:
    """Mean over images of |top-k ∩ true| / k and |top-k ∩ true| / |true| (images with labels)."""
    s, t = _check(scores, targets)
    k = min(k, s.shape[1])
    top = np.argsort(-s, axis=1, kind="mergesort")[:, :k]
    hits = np.take_along_axis(t > 0, top, axis=1).sum(axis=1)
    n_true = (t > 0).sum(axis=1)
    has = n_true > 0
    if not has.any():
        return float("nan"), float("nan")
    return float(np.mean(hits[has] / k)), float(np.mean(hits[has] / n_true[has]))


def top_k_hit_rate(scores: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> float:
    """Fraction of images (with labels) whose top-k predictions contain at least one true emoji."""
    s, t = _check(scores, targets)
    k = min(k, s.shape[1])
    top = np.argsort(-s, axis=1, kind="mergesort")[:, :k]
    hit = np.asarray(np.take_along_axis(t > 0, top, axis=1).any(axis=1))
    has = np.asarray((t > 0).any(axis=1))
    return float(np.mean(hit[has])) if has.any() else float("nan")


def evaluate_scores(
    scores: npt.ArrayLike,
    targets: npt.ArrayLike,
    emojis: list[str] | None = None,
    ks: tuple[int, ...] = (1, 3, 5),
) -> dict[str, Any]:
    """All metrics of ``scores`` (N, V) against multi-hot ``targets`` (N, V).

    ``mAP_macro`` averages AP over emojis with at least one positive; ``mAP_micro`` ranks every
    (image, emoji) pair together.
    """
    s, t = _check(scores, targets)
    per_emoji = [average_precision(s[:, j], t[:, j]) for j in range(s.shape[1])]
    valid = [ap for ap in per_emoji if not np.isnan(ap)]
    out: dict[str, Any] = {
        "n_images": int(s.shape[0]),
        "mAP_macro": float(np.mean(valid)) if valid else float("nan"),
        "mAP_micro": average_precision(s.ravel(), t.ravel()),
        "top1": top_k_hit_rate(s, t, 1),
        "top5": top_k_hit_rate(s, t, 5),
    }
    for k in ks:
        p, r = precision_recall_at_k(s, t, k)
        out[f"P@{k}"] = p
        out[f"R@{k}"] = r
    names = emojis or [str(j) for j in range(s.shape[1])]
    out["per_emoji_AP"] = {
        e: (None if np.isnan(ap) else round(ap, 6)) for e, ap in zip(names, per_emoji, strict=True)
    }
    out["per_emoji_support"] = {e: int(n) for e, n in zip(names, (t > 0).sum(axis=0), strict=True)}
    return out
