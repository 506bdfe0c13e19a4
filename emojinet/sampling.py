"""The distribution view: draw many emojis for one image and describe what comes out.

The EmojiGAN paper (Barbieri et al.) argues that one photo maps to a *distribution* over emojis,
not to one emoji. Given a model's per-emoji scores we form a categorical distribution, draw
``n`` emojis, and report the histogram, its mode, the entropy, and how stable that mode is.

Owns :class:`Distribution` and :func:`describe_draws`, which every head shares (the classifier's
:func:`sample_distribution` here, the EmojiGAN head in :mod:`emojinet.gan_head`), and the
classifier's categorical sampling. Numpy only: the serving path never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from emojinet.errors import SamplingError

__all__ = [
    "Distribution",
    "categorical",
    "check_draws",
    "describe_draws",
    "mode_stability",
    "sample_distribution",
    "summarize",
]

#: Resamples used to estimate mode stability (standard error ≤ 0.5 / sqrt(R) ≈ 0.016).
STABILITY_RESAMPLES = 1000

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Distribution:
    """What ``n`` draws from one image's emoji distribution look like."""

    samples: list[str]
    histogram: list[tuple[str, int]]  # (emoji, count), most drawn first
    mode: str
    mode_stability: float  # P(another n draws have the same mode), estimated by resampling
    entropy: float  # of the categorical distribution, in bits
    top_k: list[tuple[str, float]]  # empirical frequencies of the most drawn emojis
    n: int
    temperature: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["histogram"] = [{"emoji": e, "count": c} for e, c in self.histogram]
        d["top_k"] = [{"emoji": e, "frequency": f} for e, f in self.top_k]
        return d

    def format(self) -> str:
        bars = "\n".join(
            f"  {e}  {c:4d}  {'█' * max(1, round(40 * c / self.n))}" for e, c in self.histogram[:10]
        )
        return (
            f"  mode {self.mode}  stability {self.mode_stability:.2f}  "
            f"entropy {self.entropy:.2f} bits  ({self.n} draws, T={self.temperature:g})\n{bars}"
        )


def categorical(
    scores: npt.ArrayLike, temperature: float = 1.0, top_k: int | None = None
) -> Floats:
    """(V,) non-negative scores → (V,) float64 probabilities ∝ scores^(1/T), optionally cut to
    the top k.

    ``T < 1`` sharpens, ``T > 1`` flattens; zero scores (e.g. deny-listed emojis) stay zero.
    """
    if temperature <= 0:
        raise SamplingError(f"temperature must be > 0, got {temperature}")
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    if float(s.sum()) <= 0:
        raise SamplingError("all scores are zero: there is nothing to sample")
    # scores^(1/T) computed in log space, normalised by the max for stability.
    with np.errstate(divide="ignore"):
        logp = np.where(s > 0, np.log(s) / temperature, -math.inf)
    if top_k is not None and top_k < s.size:
        kth = np.partition(logp, s.size - top_k)[s.size - top_k]  # the k-th largest
        logp = np.where(logp >= kth, logp, -math.inf)
    p = np.exp(logp - logp.max())
    out: Floats = p / p.sum()
    return out


def mode_stability(
    probs: npt.ArrayLike,
    n: int,
    mode: int,
    *,
    resamples: int = STABILITY_RESAMPLES,
    generator: np.random.Generator | None = None,
) -> float:
    """P(the mode of ``n`` fresh draws from ``probs`` is ``mode``), by resampling.

    Args:
        probs: (V,) categorical probabilities.
        n: draws per sample set.
        mode: index of the observed mode.
        resamples: R independent sets of ``n`` draws.
        generator: numpy's, for reproducible resampling.

    Ties are broken towards the more probable emoji, the same rule :func:`summarize` uses.
    """
    rng = generator if generator is not None else np.random.default_rng()
    p = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-p, kind="stable")  # rank → emoji index
    ranked = p[order] / p.sum()  # (V,) sorted, so argmax's first-index rule = more probable
    draws = rng.choice(ranked.size, size=(resamples, n), p=ranked)  # (R, n) ranks
    width = int(draws.max()) + 1  # ranks past the largest drawn have no counts
    rows = np.arange(resamples)[:, None] * width
    counts = np.bincount((rows + draws).ravel(), minlength=resamples * width)
    modes = order[counts.reshape(resamples, width).argmax(axis=1)]  # (R,) emoji indices
    return float((modes == mode).mean())


def summarize(
    draws: Sequence[int], probs: npt.ArrayLike, vocab: Sequence[str]
) -> tuple[list[tuple[str, int]], int]:
    """Histogram of draws (most frequent first; ties → more probable emoji) and the mode index."""
    counts = np.bincount(np.asarray(draws, dtype=np.int64), minlength=len(vocab))
    p = np.asarray(probs, dtype=np.float64)
    ranked = sorted(np.flatnonzero(counts).tolist(), key=lambda i: (-counts[i], -p[i], i))
    histogram = [(vocab[i], int(counts[i])) for i in ranked]
    return histogram, int(ranked[0])


def check_draws(n: int) -> None:
    """Raise :class:`SamplingError` unless ``n`` draws can be made."""
    if n < 1:
        raise SamplingError(f"n must be at least 1, got {n}")


def describe_draws(
    draws: Sequence[int],
    probs: npt.ArrayLike,
    vocab: Sequence[str],
    *,
    temperature: float = 1.0,
    generator: np.random.Generator | None = None,
    k: int = 10,
) -> Distribution:
    """What ``n = len(draws)`` draws from ``probs`` look like, for any head.

    Args:
        draws: the n drawn vocabulary indices.
        probs: (V,) the distribution the draws are described against: the categorical one
            they came from, or their empirical frequencies when there is no closed form.
            Entropy, tie-breaking and the mode's stability are those of ``probs``.
        temperature: reported as given.
        generator: for the stability resampling.
        k: how many entries the empirical ``top_k`` lists.
    """
    n = len(draws)
    p = np.asarray(probs, dtype=np.float64)
    histogram, mode = summarize(draws, p, vocab)
    nz = p[p > 0]
    return Distribution(
        samples=[vocab[i] for i in draws],
        histogram=histogram,
        mode=vocab[mode],
        mode_stability=mode_stability(p, n, mode, generator=generator),
        entropy=0.0 - float((nz * np.log2(nz)).sum()),  # 0.0, never -0.0
        top_k=[(e, c / n) for e, c in histogram[:k]],
        n=n,
        temperature=temperature,
    )


def sample_distribution(
    scores: npt.ArrayLike,
    vocab: Sequence[str],
    *,
    n: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    k: int = 10,
) -> Distribution:
    """Draw ``n`` emojis for one image from its per-emoji scores.

    Args:
        scores: (V,) per-emoji scores in [0, 1] (a classifier's probabilities).
        vocab: the V emojis, in score order.
        n: number of draws (the paper uses 50).
        temperature: see :func:`categorical`.
        top_k: sample only among the k best-scored emojis.
        seed: makes the draws and the stability estimate reproducible (numpy's PCG64).
        k: how many entries the empirical ``top_k`` lists.

    Raises:
        SamplingError: bad ``n``, ``temperature`` or shape, or every score is zero.
    """
    check_draws(n)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size != len(vocab):
        raise SamplingError(f"scores must have shape ({len(vocab)},), got {tuple(s.shape)}")
    rng = np.random.default_rng(seed)
    probs = categorical(s, temperature, top_k)  # (V,)
    draws = rng.choice(probs.size, size=n, p=probs).tolist()  # (n,)
    return describe_draws(draws, probs, vocab, temperature=temperature, generator=rng, k=k)
