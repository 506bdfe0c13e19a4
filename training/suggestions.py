"""Suggestion quality: labelled image sets, top-k hit rates, worst misses and reliability.

A labelled set is a JSON list of ``{"file": ..., "accept": [emojis], "category": ...}``
(``category`` and other keys optional; a relative ``file`` is resolved against the JSON file's
folder). A photo is a top-k hit when any of the model's first k suggestions is in ``accept``,
compared with U+FE0F removed; rates are over *all* images of a set, whether or not their emojis
are in the model's vocabulary (``../shared/eval-dev/README.md``'s rule).

Reliability: every suggestion in an image's top k is one (score, accepted?) pair; binned by
score, a calibrated model's accept rate in a bin matches the bin's mean score.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import DataError

__all__ = [
    "LabelledImage",
    "Reliability",
    "SetReport",
    "load_set",
    "reliability",
    "score_set",
]

_VS16 = "\ufe0f"


def _key(e: str) -> str:
    return e.replace(_VS16, "")


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    accept: tuple[str, ...]
    category: str = ""


def load_set(path: str | Path) -> list[LabelledImage]:
    """Read a labelled set; raises :class:`DataError` naming the entry that is malformed."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the labelled set ({exc})") from exc
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of {{file, accept}} objects")
    out: list[LabelledImage] = []
    for i, entry in enumerate(entries):
        try:
            file, accept = Path(entry["file"]), entry["accept"]
        except (KeyError, TypeError):
            raise DataError(f"{path}: entry {i} needs 'file' and 'accept'") from None
        if (
            not isinstance(accept, list)
            or not accept
            or not all(isinstance(a, str) for a in accept)
        ):
            raise DataError(f"{path}: entry {i} ('accept') must be a non-empty list of emojis")
        file = file if file.is_absolute() else path.parent / file
        out.append(LabelledImage(file, tuple(accept), str(entry.get("category", ""))))
    return out


@dataclass
class Miss:
    file: str
    suggested: list[str]
    top_score: float
    accept: list[str]


@dataclass
class SetReport:
    """Hit rates of one model on one labelled set."""

    n: int
    top1: float
    top5: float
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    worst_misses: list[Miss] = field(default_factory=list)
    #: The emoji most often in a top 5 where it is not accepted, and the share of the images
    #: it is so in: hit rates cannot see a model that adds 🐕 to every picture, users do.
    repeated_wrong: tuple[str, float] = ("", 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hit_ranks(ranked: Sequence[Sequence[str]], accept: Sequence[Sequence[str]]) -> np.ndarray:
    """(N,) rank of the first accepted suggestion (0-based), or a large number when none is."""
    ranks = np.full(len(ranked), 1 << 30, dtype=np.int64)
    for i, (row, ok) in enumerate(zip(ranked, accept, strict=True)):
        want = {_key(a) for a in ok}
        for r, e in enumerate(row):
            if _key(e) in want:
                ranks[i] = r
                break
    return ranks


def score_set(
    images: Sequence[LabelledImage],
    ranked: Sequence[Sequence[str]],
    top_scores: Sequence[float],
    *,
    n_misses: int = 10,
) -> SetReport:
    """Hit rates for ``ranked`` suggestions (best first, at least 5 per image).

    ``top_scores`` are the scores of each image's first suggestion; the worst misses are the
    top-5 misses the model was most confident about.
    """
    if len(images) != len(ranked) or len(images) != len(top_scores):
        raise ValueError("images, ranked and top_scores must have the same length")
    ranks = _hit_ranks(ranked, [im.accept for im in images])
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        by_cat[im.category or "-"].append(i)
    per_category = {
        cat: {
            "n": len(idx),
            "top1": float(np.mean(ranks[idx] < 1)),
            "top5": float(np.mean(ranks[idx] < 5)),
        }
        for cat, idx in sorted(by_cat.items())
    }
    misses = [i for i in np.argsort(-np.asarray(top_scores), kind="stable") if ranks[i] >= 5]
    worst = [
        Miss(str(images[i].path), list(ranked[i][:5]), float(top_scores[i]), list(images[i].accept))
        for i in misses[:n_misses]
    ]
    n = len(images)
    return SetReport(
        n=n,
        top1=float(np.mean(ranks < 1)) if n else 0.0,
        top5=float(np.mean(ranks < 5)) if n else 0.0,
        per_category=per_category,
        worst_misses=worst,
        repeated_wrong=_repeated_wrong(images, ranked),
    )


def _repeated_wrong(
    images: Sequence[LabelledImage], ranked: Sequence[Sequence[str]]
) -> tuple[str, float]:
    wrong: Counter[str] = Counter()
    for im, row in zip(images, ranked, strict=True):
        want = {_key(a) for a in im.accept}
        wrong.update(list(dict.fromkeys(e for e in row[:5] if _key(e) not in want)))
    if not wrong:
        return "", 0.0
    emoji, count = wrong.most_common(1)[0]
    return emoji, count / len(images)


@dataclass
class Reliability:
    """Binned (score, accepted?) pairs: ``mean_score[b]`` vs ``accept_rate[b]`` of ``count[b]``."""

    edges: list[float]
    count: list[int]
    mean_score: list[float]
    accept_rate: list[float]
    ece: float  # expected calibration error: count-weighted mean |accept_rate - mean_score|

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reliability(
    scores: Sequence[float] | np.ndarray, accepted: Sequence[bool] | np.ndarray, bins: int = 10
) -> Reliability:
    """Bin pairs by score into ``bins`` equal-width bins over [0, 1]."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(accepted, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError("scores and accepted must have the same length")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    mean_score = np.bincount(which, weights=s, minlength=bins) / safe
    accept_rate = np.bincount(which, weights=y, minlength=bins) / safe
    ece = float(np.sum(count * np.abs(accept_rate - mean_score)) / max(len(s), 1))
    return Reliability(
        edges.tolist(), count.tolist(), mean_score.tolist(), accept_rate.tolist(), ece
    )


def accepted_pairs(
    images: Sequence[LabelledImage],
    ranked: Sequence[Sequence[str]],
    scores: Sequence[Sequence[float]],
    k: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten each image's top-k suggestions into (scores, accepted?) arrays."""
    s: list[float] = []
    y: list[bool] = []
    for im, row, row_scores in zip(images, ranked, scores, strict=True):
        want = {_key(a) for a in im.accept}
        for e, v in zip(row[:k], row_scores[:k], strict=True):
            s.append(float(v))
            y.append(_key(e) in want)
    return np.asarray(s), np.asarray(y)
