"""The class→emoji concept map and the zero-shot scores it gives, as plain numpy (build time).

For ImageNet class c and emoji e, with the WordNet ancestors a of c (c itself at distance 0):

    raw[c, e] = max over a of  sim(a, e) - step * distance(c, a)         (a: c, or an ancestor
                                                                    above <= max_below classes)
                         and  exact_score - step * distance(c, a)   (a: c when one of its lemmas
                              is a name of e; an ancestor above <= max_below_exact classes whose
                              first lemma is: golden retriever → dog → 🐕)

and, where the curated list names emojis for c (``curated_score`` > 0), the automatic values
of c are scaled by ``curated_damp`` and its listed emojis get at least
``curated_score - 0.05 * position`` (0 = most fitting).

``sim`` mixes the cosine similarity of the synset's lemmas and of its lemmas + gloss with the
emoji's names and keywords. Fuzzy similarity from broad ancestors ("animal", "artifact") is
noise, so it only counts up to ``max_below`` classes; an exact name is reliable further up.
A class maps to nothing when its best ``raw`` is under ``threshold``; otherwise its best emoji
gets 1 and the next ``top_k - 1`` get ``exp((raw - best) / temperature)``; then each emoji's
column is divided by ``max(1, column sum) ** column_power``, so that an emoji many classes
point to (🐕: 118 breeds) does not gather their small probabilities on every picture.

An image's scores: ``p @ A`` for its ImageNet probabilities ``p`` (softmax of logits divided by
``class_temperature``: above 1 spreads a scene over more classes), normalised to sum to 1 and
mixed with a softmax of the cosine similarity of the image's features to each emoji's vendor
pictures, times the usage prior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from concept_data import Ingredients


@dataclass(frozen=True)
class MapKnobs:
    gloss_weight: float = 0.5
    step: float = 0.05
    max_below: int = 50
    exact_score: float = 0.8
    exact_step: float = 0.02
    max_below_exact: int = 150
    threshold: float = 0.55
    temperature: float = 0.1
    top_k: int = 10
    curated_score: float = 0.0  # 0: the curated list is not used
    curated_damp: float = 1.0
    column_power: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScoreKnobs:
    class_temperature: float = 1.0
    visual_weight: float = 0.0
    visual_temperature: float = 0.05
    prior_weight: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_affinity(ing: Ingredients, k: MapKnobs) -> np.ndarray:
    """(1000, M) best ancestor similarity per class and emoji, before the row normalisation."""
    sim = (1 - k.gloss_weight) * ing.sim_name + k.gloss_weight * ing.sim_gloss  # (S, M)
    fuzzy_ok = ing.n_classes_below <= k.max_below  # (S,)
    exact_ok = ing.n_classes_below <= k.max_below_exact  # (S,)
    # An exact name beats a keyword; similarity breaks ties (🐈 "cat" before 😹 "cat" keyword).
    exact_any = exact_term(ing.exact, sim, k)  # (S, M)
    exact_head = exact_term(ing.exact_head, sim, k)  # (S, M)
    raw = np.empty((ing.distance.shape[0], sim.shape[1]), np.float32)
    for c in range(ing.distance.shape[0]):
        d = ing.distance[c]
        rows = np.flatnonzero((d == 0) | ((d > 0) & fuzzy_ok))
        row = (sim[rows] - k.step * d[rows, None]).max(axis=0)
        own = np.flatnonzero(d == 0)
        row = np.maximum(row, exact_any[own].max(axis=0))
        named = np.flatnonzero((d > 0) & exact_ok)
        if named.size:
            row = np.maximum(row, (exact_head[named] - k.exact_step * d[named, None]).max(axis=0))
        raw[c] = row
    if k.curated_score > 0:
        listed = ing.curated > 0  # (1000, M)
        has_list = listed.any(axis=1, keepdims=True)
        raw = np.where(has_list, raw * k.curated_damp, raw)
        curated = np.where(listed, k.curated_score - 0.05 * (ing.curated - 1), -np.inf)
        raw = np.maximum(raw, curated).astype(np.float32)
    return raw


def exact_term(level: np.ndarray, sim: np.ndarray, k: MapKnobs) -> np.ndarray:
    """(S, M) score of exact matches (level 2: a name, 1: a keyword), -inf where none."""
    score = k.exact_score - 0.1 * (level == 1) + 0.1 * sim
    return np.where(level > 0, score, -np.inf).astype(np.float32)


def normalise_rows(raw: np.ndarray, k: MapKnobs) -> np.ndarray:
    """(1000, M) affinity in [0, 1]: per class, top_k emojis relative to the best one."""
    top = min(k.top_k, raw.shape[1])
    idx = np.argpartition(-raw, top - 1, axis=1)[:, :top]  # (1000, top)
    vals = np.take_along_axis(raw, idx, axis=1)
    best = vals.max(axis=1, keepdims=True)
    weights = np.exp((vals - best) / k.temperature) * (best >= k.threshold)
    out = np.zeros_like(raw)
    np.put_along_axis(out, idx, weights.astype(np.float32), axis=1)
    return out


def affinity(ing: Ingredients, k: MapKnobs) -> np.ndarray:
    """(1000, M) class→emoji map: normalised rows, then the column scaling (module docstring)."""
    aff = normalise_rows(raw_affinity(ing, k), k)
    if k.column_power > 0:
        aff = aff / np.maximum(aff.sum(axis=0, keepdims=True), 1.0) ** k.column_power
    return aff


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def scores(
    logits: np.ndarray,
    feats: np.ndarray | None,
    aff: np.ndarray,
    emoji_feats: np.ndarray | None,
    prior: np.ndarray,
    k: ScoreKnobs,
) -> np.ndarray:
    """(N, M) emoji scores for (N, 1000) ImageNet logits and (N, D) pooled features.

    Both parts are distributions over the emojis before they are mixed: the concept scores
    ``p @ A`` divided by their sum, and a softmax of the cosine similarity to each emoji's
    pictures (emojis with no picture get none of it).
    """
    p = softmax(logits / k.class_temperature)
    s = p @ aff  # (N, M)
    s = s / np.maximum(s.sum(axis=1, keepdims=True), 1e-9)
    if k.visual_weight > 0 and feats is not None and emoji_feats is not None:
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        norms = np.linalg.norm(emoji_feats, axis=1, keepdims=True)
        sim = unit @ (emoji_feats / np.maximum(norms, 1e-9)).T  # (N, M)
        vis = softmax(np.where(norms.T > 0, sim, -np.inf) / k.visual_temperature)
        s = (1 - k.visual_weight) * s + k.visual_weight * vis
    return s * ((1 - k.prior_weight) + k.prior_weight * prior)  # type: ignore[no-any-return]
