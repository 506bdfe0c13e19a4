"""Zero-shot emoji head: ImageNet-1k class probabilities mapped to emojis through text similarity.

After Image2Emoji (Cappallo et al. 2015): concept detectors (here the pretrained ImageNet-1k
classifier of the backbone) and word embeddings (here all-MiniLM-L6-v2 sentence embeddings of
ImageNet class names and emoji names, precomputed by ``scripts/build_text_embeddings.py`` into
``emojinet/data/text_embeddings.npz``). For an image with class probabilities ``p`` (1000,):

    s = (p @ A) * ((1 - w) + w * q)      # (V,) emoji scores in [0, 1]

where ``A`` (1000, V) is the class→emoji affinity (a row's best emoji gets 1 when its cosine
similarity reaches ``min_similarity`` and the row is all 0 otherwise, the next few decay with
the similarity gap, the rest are 0; so an espresso at 0.96 gives ☕ about 0.96) and ``q``
(V,) the usage-frequency prior scaled to a maximum of 1: it only reorders emojis with visual
evidence, so 😂 and ❤️ never crowd out what the photo shows.
Serving needs only the shipped vectors, never the text model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import torch
from torch import nn

from emojinet.backbones import Backbone
from emojinet.errors import VocabularyError
from emojinet.vocab import Vocabulary

__all__ = [
    "EMBEDDINGS_FILE",
    "NUM_CLASSES",
    "ZeroShotHead",
    "ZeroShotParams",
    "affinity_matrix",
    "emoji_embeddings",
    "frequency_prior",
]

EMBEDDINGS_FILE = "text_embeddings.npz"
NUM_CLASSES = 1000
#: Score given to an emoji with prior 1 that no recognised concept maps to (far below any
#: mapped emoji's score, so it only orders emojis without visual evidence).
PRIOR_FLOOR = 1e-5


@dataclass(frozen=True)
class ZeroShotParams:
    """Knobs of the class→emoji matrix; defaults tuned by ``scripts/tune_zeroshot.py``.

    Attributes:
        temperature: how fast affinity falls off below a class's best-matching emoji, in cosine
            similarity units: ``exp((sim - best) / temperature)``.
        top_k: emojis kept per ImageNet class; the rest of the row is 0.
        gloss_weight: class text vector = mix of its lemmas (0) and lemmas + WordNet gloss (1).
        prior_weight: w; scores are multiplied by ``(1 - w) + w * q`` (q: usage prior in [0, 1]).
        min_similarity: a class whose best emoji is less similar than this maps to nothing.
    """

    temperature: float = 0.1
    top_k: int = 10
    gloss_weight: float = 0.5
    prior_weight: float = 0.1
    min_similarity: float = 0.65

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 <= self.gloss_weight <= 1.0:
            raise ValueError(f"gloss_weight must be in [0, 1], got {self.gloss_weight}")
        if not 0.0 <= self.prior_weight < 1.0:
            raise ValueError(f"prior_weight must be in [0, 1), got {self.prior_weight}")
        if not 0.0 <= self.min_similarity < 1.0:
            raise ValueError(f"min_similarity must be in [0, 1), got {self.min_similarity}")


@dataclass(frozen=True)
class _TextEmbeddings:
    class_names: torch.Tensor  # (1000, E) float32, unit rows: lemmas
    class_glosses: torch.Tensor  # (1000, E) float32, unit rows: lemmas + gloss
    emoji_vecs: torch.Tensor  # (M, E) float32, unit rows, M = every emoji of Vocabulary.all()
    emoji_index: dict[str, int]


@cache
def _embeddings() -> _TextEmbeddings:
    """Load the shipped embeddings file once."""
    with resources.files("emojinet.data").joinpath(EMBEDDINGS_FILE).open("rb") as f:
        data = np.load(f, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    emojis = [str(e) for e in arrays["emojis"]]
    return _TextEmbeddings(
        class_names=torch.from_numpy(arrays["class_name_vecs"].astype(np.float32)),
        class_glosses=torch.from_numpy(arrays["class_gloss_vecs"].astype(np.float32)),
        emoji_vecs=torch.from_numpy(arrays["emoji_vecs"].astype(np.float32)),
        emoji_index={e: i for i, e in enumerate(emojis)},
    )


def _class_vectors(gloss_weight: float) -> torch.Tensor:
    """(1000, E) unit class vectors, lemmas and glosses mixed by ``gloss_weight``."""
    emb = _embeddings()
    mixed = (1.0 - gloss_weight) * emb.class_names + gloss_weight * emb.class_glosses
    return nn.functional.normalize(mixed, dim=1)


def _emoji_vectors(vocab: Vocabulary) -> torch.Tensor:
    """(V, E) unit emoji vectors in vocabulary order."""
    emb = _embeddings()
    missing = [e for e in vocab if e not in emb.emoji_index]
    if missing:
        shown = " ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise VocabularyError(
            f"{len(missing)} emoji(s) have no text embedding for the zero-shot head: {shown}. "
            "Only single fully-qualified emojis of Vocabulary.all() are supported "
            "(no ZWJ sequences or skin tones)."
        )
    return emb.emoji_vecs[[emb.emoji_index[e] for e in vocab]]


def emoji_embeddings(vocab: Vocabulary) -> torch.Tensor:
    """(V, 384) unit sentence embeddings of each emoji's name and aliases (the EmojiGAN head's)."""
    return _emoji_vectors(vocab)


def affinity_matrix(vocab: Vocabulary, params: ZeroShotParams = ZeroShotParams()) -> torch.Tensor:
    """The (1000, V) float32 class→emoji affinity in [0, 1]; at most top-k non-zeros per row.

    Raises:
        VocabularyError: an emoji of ``vocab`` has no shipped text embedding.
    """
    sim = _class_vectors(params.gloss_weight) @ _emoji_vectors(vocab).T  # (1000, V) cosine
    k = min(params.top_k, len(vocab))
    top_sim, top_idx = sim.topk(k, dim=1)  # (1000, k), sorted descending
    best = top_sim[:, :1]  # (1000, 1)
    weights = torch.exp((top_sim - best) / params.temperature)  # (1000, k), first = 1
    weights = weights * (best >= params.min_similarity)  # (1000, k): unmatched classes → 0
    affinity = torch.zeros_like(sim)
    affinity.scatter_(1, top_idx, weights)
    return affinity.contiguous()


def frequency_prior(vocab: Vocabulary, smoothing: float = 1.0) -> torch.Tensor:
    """(V,) add-``smoothing`` usage frequencies scaled so the most used emoji has 1."""
    counts = torch.tensor(vocab.counts, dtype=torch.float32) + smoothing
    return counts / counts.max()


class ZeroShotHead(nn.Module):
    """(N, D) backbone features → (N, V) emoji logits, with no trained weights of its own.

    ``torch.sigmoid(logits)`` are the emoji scores ``s`` in [0, 1] (see the module docstring).
    Everything is a buffer, so the head travels in a state dict and exports to ONNX.
    """

    imagenet_weight: torch.Tensor
    imagenet_bias: torch.Tensor
    affinity: torch.Tensor
    prior: torch.Tensor

    def __init__(
        self,
        imagenet_head: nn.Linear,
        affinity: torch.Tensor,
        prior: torch.Tensor | None = None,
        *,
        prior_weight: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        """
        Args:
            imagenet_head: the backbone's Linear(D, 1000) ImageNet classifier (copied).
            affinity: (1000, V) class→emoji matrix with entries in [0, 1].
            prior: (V,) prior scores in [0, 1]; None means no prior.
            prior_weight: share of ``prior`` in the final score.
            eps: scores are clamped to [eps, 1 - eps] before the logit.
        """
        super().__init__()
        num_classes = imagenet_head.out_features
        if affinity.ndim != 2 or affinity.shape[0] != num_classes:
            raise ValueError(f"affinity must be ({num_classes}, V), got {tuple(affinity.shape)}")
        num_emojis = affinity.shape[1]
        if prior is None:
            prior, prior_weight = torch.zeros(num_emojis), 0.0
        if prior.shape != (num_emojis,):
            raise ValueError(f"prior must be ({num_emojis},), got {tuple(prior.shape)}")
        if not 0.0 <= prior_weight < 1.0:
            raise ValueError(f"prior_weight must be in [0, 1), got {prior_weight}")
        weight = imagenet_head.weight.detach().clone().float()  # (1000, D)
        bias = (
            imagenet_head.bias.detach().clone().float()
            if imagenet_head.bias is not None
            else torch.zeros(num_classes)
        )  # (1000,)
        self.register_buffer("imagenet_weight", weight)
        self.register_buffer("imagenet_bias", bias)
        self.register_buffer("affinity", affinity.detach().clone().float())  # (1000, V)
        self.register_buffer("prior", prior.detach().clone().float())  # (V,)
        self.prior_weight = float(prior_weight)
        self.eps = float(eps)

    @property
    def num_emojis(self) -> int:
        return int(self.affinity.shape[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features → (N, V) logits; sigmoid gives scores in [0, 1]."""
        class_logits = nn.functional.linear(features, self.imagenet_weight, self.imagenet_bias)
        probs = torch.softmax(class_logits, dim=-1)  # (N, 1000)
        scores = probs @ self.affinity  # (N, V), in [0, 1] since rows of probs sum to 1
        w = self.prior_weight
        scores = scores * ((1.0 - w) + w * self.prior)  # (N, V): the prior only breaks ties
        # A floor proportional to the prior: emojis no recognised concept maps to (all of
        # them, for a photo of something ImageNet lacks) rank by usage instead of arbitrarily.
        scores = scores + PRIOR_FLOOR * self.prior  # (N, V)
        scores = scores.clamp(self.eps, 1.0 - self.eps)
        return torch.log(scores) - torch.log1p(-scores)  # (N, V) logit(scores)

    @classmethod
    def from_backbone(
        cls, backbone: Backbone, vocab: Vocabulary, params: ZeroShotParams = ZeroShotParams()
    ) -> ZeroShotHead:
        """Build the head from a backbone's ImageNet classifier and the shipped text embeddings."""
        if backbone.imagenet_head is None:
            raise ValueError(
                f"backbone {backbone.name!r} has no ImageNet classifier: the zero-shot head "
                "needs pretrained ImageNet weights (weights='imagenet' or a full weights file)"
            )
        return cls(
            backbone.imagenet_head,
            affinity_matrix(vocab, params),
            frequency_prior(vocab),
            prior_weight=params.prior_weight,
        )
