"""Zero-shot emoji head: ImageNet-1k concepts mapped to every current emoji, with no training.

After Image2Emoji (Cappallo et al. 2015): the backbone's pretrained ImageNet classifier detects
concepts, and a class→emoji map turns them into emoji scores. The map (``data/concept_map.npz``,
built offline by ``scripts/build_concept_map.py``) follows WordNet's hierarchy: an ImageNet class
is a WordNet noun, so a class maps through its ancestors too (tabby → cat → 🐈, hog → swine → 🐖,
alp → mountain → 🏔️), scored by sentence-embedding similarity of WordNet lemmas and glosses with
emoji names and CLDR keywords. For an image with pooled features ``f`` (D,):

    p = softmax(imagenet_logits(f) / class_temperature)   # (1000,)
    s = p @ A / sum(p @ A)                                # (V,) the whole class distribution
    s = (1 - λ) s + λ softmax(cos(f, picture_e) / τ)      # the emoji's vendor pictures
    s = s * ((1 - w) + w * prior)                         # usage prior (smoothed: new emojis)
    score = sigmoid(a * logit(s) + b)                     # calibrated: P(a person accepts it)

Every knob was chosen by cross-validation over the development sets
(``scripts/tune_zeroshot.py``) and ships inside the map file; serving needs neither WordNet
nor the text model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import emoji as emoji_lib
import numpy as np
import torch
from torch import nn

from emojinet.backbones import Backbone
from emojinet.errors import ConfigError, VocabularyError
from emojinet.vocab import Vocabulary, normalize_emoji

__all__ = [
    "CONCEPT_MAP_FILE",
    "EMBEDDINGS_FILE",
    "NUM_CLASSES",
    "ZeroShotHead",
    "ZeroShotParams",
    "affinity_matrix",
    "concept_map_digest",
    "emoji_embeddings",
    "frequency_prior",
    "shipped_crop",
]

CONCEPT_MAP_FILE = "concept_map.npz"
EMBEDDINGS_FILE = "text_embeddings.npz"
NUM_CLASSES = 1000
#: Score given to an emoji with prior 1 that nothing maps to (far below any mapped emoji's
#: score, so it only orders emojis without visual evidence).
PRIOR_FLOOR = 1e-7


@dataclass(frozen=True)
class ZeroShotParams:
    """The head's runtime knobs (the shipped ones come with the concept map)."""

    class_temperature: float = 1.0
    prior_weight: float = 0.1
    visual_weight: float = 0.0
    visual_temperature: float = 0.05
    calibration_a: float = 1.0
    calibration_b: float = 0.0

    def __post_init__(self) -> None:
        if self.class_temperature <= 0 or self.visual_temperature <= 0:
            raise ValueError("temperatures must be > 0")
        if not 0.0 <= self.prior_weight < 1.0:
            raise ValueError(f"prior_weight must be in [0, 1), got {self.prior_weight}")
        if not 0.0 <= self.visual_weight <= 1.0:
            raise ValueError(f"visual_weight must be in [0, 1], got {self.visual_weight}")

    @classmethod
    def shipped(cls) -> ZeroShotParams:
        params = _concept_map().params
        return cls(**{k: float(params[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class _ConceptMap:
    index: dict[str, int]  # emoji → column
    affinity: torch.Tensor  # (1000, M) float32
    prior: torch.Tensor  # (M,) float32
    visual: torch.Tensor | None  # (M, D) float32, zero rows where no vendor draws the emoji
    params: dict[str, Any]  # runtime knobs, build knobs, sources


@cache
def _concept_map() -> _ConceptMap:
    """The shipped map, loaded once."""
    with resources.files("emojinet.data").joinpath(CONCEPT_MAP_FILE).open("rb") as f:
        data = np.load(f, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    return _ConceptMap(
        index={str(e): i for i, e in enumerate(arrays["emojis"])},
        affinity=torch.from_numpy(arrays["affinity"].astype(np.float32)),
        prior=torch.from_numpy(arrays["prior"].astype(np.float32)),
        visual=(
            torch.from_numpy(arrays["visual"].astype(np.float32)) if "visual" in arrays else None
        ),
        params=json.loads(str(arrays["params"].reshape(-1)[0])),
    )


@cache
def concept_map_digest() -> str:
    """sha256 of the shipped concept map file (what a residual head was trained against)."""
    data = resources.files("emojinet.data").joinpath(CONCEPT_MAP_FILE).read_bytes()
    return hashlib.sha256(data).hexdigest()


def shipped_crop() -> str:
    """The view of the picture the shipped knobs were chosen for: ``"full"`` or ``"center"``."""
    return str(_concept_map().params.get("view", "center"))


_TONE_NAME = re.compile(r"(_(light|medium-light|medium|medium-dark|dark)_skin_tone)+$")


def _names(emojis: Iterable[str]) -> dict[str, str]:
    """CLDR name (``"thumbs_up"``) → emoji, for the emojis of a shipped table."""
    data = emoji_lib.EMOJI_DATA
    return {str(data[e]["en"]).strip(":"): e for e in emojis if e in data}


def _base_emoji(e: str, index: dict[str, int], names: dict[str, str]) -> str | None:
    """The emoji of a table that stands for ``e``: itself, else its toneless base, else None.

    ``👍🏽`` → ``👍``, ``🧑🏽‍🚀`` → ``🧑‍🚀``. Two people with two tones have no toneless ZWJ form:
    their base is found by CLDR name (``🫱🏿‍🫲🏻`` handshake: dark skin tone, light skin tone →
    ``🤝`` handshake; ``🧑🏿‍❤️‍🧑🏻`` couple with heart: person, person, … → ``💑``).
    """
    if e in index:
        return e
    folded = normalize_emoji(e, fold_skin_tone=True)
    if folded in index:
        return folded
    data = emoji_lib.EMOJI_DATA.get(e)
    if data is None:
        return None
    name = _TONE_NAME.sub("", str(data["en"]).strip(":"))
    return names.get(name) or names.get(name.removesuffix("_person_person"))


def _columns(vocab: Vocabulary, index: dict[str, int], what: str) -> list[int]:
    """Positions of ``vocab``'s emojis in a shipped table; skin tones use their base emoji.

    Raises:
        VocabularyError: naming every emoji that has no row (nor a base with one).
    """
    names = _names(index)
    cols, missing = [], []
    for e in vocab:
        base = _base_emoji(e, index, names)
        if base is None:
            missing.append(e)
        else:
            cols.append(index[base])
    if missing:
        shown = " ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise VocabularyError(f"{len(missing)} emoji(s) have no {what}: {shown}")
    return cols


def affinity_matrix(vocab: Vocabulary) -> torch.Tensor:
    """The (1000, V) float32 class→emoji affinity in [0, 1] for ``vocab``'s emojis.

    Raises:
        VocabularyError: an emoji of ``vocab`` is not in the shipped map.
    """
    cmap = _concept_map()
    return cmap.affinity[:, _columns(vocab, cmap.index, "zero-shot concept map entry")]


def frequency_prior(vocab: Vocabulary) -> torch.Tensor:
    """(V,) usage prior in [0, 1]: log-scaled tweet counts, smoothed for emojis without one."""
    cmap = _concept_map()
    return cmap.prior[_columns(vocab, cmap.index, "zero-shot concept map entry")]


def _emoji_pictures(vocab: Vocabulary) -> torch.Tensor | None:
    """(V, D) mean backbone features of each emoji's vendor pictures; zero rows where none."""
    cmap = _concept_map()
    if cmap.visual is None:
        return None
    return cmap.visual[_columns(vocab, cmap.index, "zero-shot concept map entry")]


@cache
def _text_embeddings() -> tuple[torch.Tensor, dict[str, int]]:
    with resources.files("emojinet.data").joinpath(EMBEDDINGS_FILE).open("rb") as f:
        data = np.load(f, allow_pickle=False)
        vecs = torch.from_numpy(data["emoji_vecs"].astype(np.float32))
        emojis = [str(e) for e in data["emojis"]]
    return vecs, {e: i for i, e in enumerate(emojis)}


def emoji_embeddings(vocab: Vocabulary) -> torch.Tensor:
    """(V, 384) unit sentence embeddings of each emoji's names and keywords (the EmojiGAN's).

    Every current emoji has one, ZWJ sequences included; a skin-toned emoji uses its base's
    (two people of two tones: the pair's, ``🫱🏿‍🫲🏻`` → ``🤝``).

    Raises:
        VocabularyError: naming the emojis that have none (an emoji newer than the table).
    """
    vecs, index = _text_embeddings()
    return vecs[_columns(vocab, index, "text embedding")]


class ZeroShotHead(nn.Module):
    """(N, D) backbone features → (N, V) emoji logits, with no trained weights of its own.

    ``torch.sigmoid(logits)`` are calibrated emoji scores in [0, 1] (see the module docstring).
    Everything is a buffer, so the head travels in a state dict and exports to ONNX.
    """

    # Version 1 (before the concept map): no normalisation, visual part or calibration; class
    # temperature 1 and prior weight 0.1 were fixed. Such heads still load and behave as then.
    _version = 2
    _LEGACY: ClassVar[dict[str, Any]] = {
        "class_temperature": 1.0,
        "prior_weight": 0.1,
        "normalise": 0.0,
        "calibration": [1.0, 0.0],
        "visual_knobs": [0.0, 1.0],
    }

    imagenet_weight: torch.Tensor
    imagenet_bias: torch.Tensor
    affinity: torch.Tensor
    prior: torch.Tensor
    class_temperature: torch.Tensor
    prior_weight: torch.Tensor
    normalise: torch.Tensor
    calibration: torch.Tensor
    visual_knobs: torch.Tensor
    visual: torch.Tensor

    def __init__(
        self,
        imagenet_head: nn.Linear,
        affinity: torch.Tensor,
        prior: torch.Tensor | None = None,
        *,
        params: ZeroShotParams = ZeroShotParams(),
        visual: torch.Tensor | None = None,
        eps: float = 1e-9,
    ) -> None:
        """
        Args:
            imagenet_head: the backbone's Linear(D, 1000) ImageNet classifier (copied).
            affinity: (1000, V) class→emoji matrix with entries in [0, 1].
            prior: (V,) prior scores in [0, 1]; None means no prior.
            params: temperatures, weights and calibration.
            visual: (V, D) features of each emoji's pictures (zero rows: none); None or
                ``params.visual_weight`` 0 means no visual part.
            eps: scores are clamped to [eps, 1 - eps] before the logit.
        """
        super().__init__()
        num_classes, num_features = imagenet_head.out_features, imagenet_head.in_features
        if affinity.ndim != 2 or affinity.shape[0] != num_classes:
            raise ValueError(f"affinity must be ({num_classes}, V), got {tuple(affinity.shape)}")
        num_emojis = affinity.shape[1]
        prior_weight = params.prior_weight
        if prior is None:
            prior, prior_weight = torch.zeros(num_emojis), 0.0
        if prior.shape != (num_emojis,):
            raise ValueError(f"prior must be ({num_emojis},), got {tuple(prior.shape)}")
        if visual is None or params.visual_weight == 0:
            visual, visual_weight = torch.zeros(num_emojis, 0), 0.0
        elif visual.shape != (num_emojis, num_features):
            raise ValueError(f"visual must be ({num_emojis}, {num_features})")
        else:
            visual_weight = params.visual_weight
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
        self.register_buffer("class_temperature", torch.tensor(params.class_temperature))
        self.register_buffer("prior_weight", torch.tensor(float(prior_weight)))
        self.register_buffer("normalise", torch.tensor(1.0))
        self.register_buffer(
            "calibration", torch.tensor([params.calibration_a, params.calibration_b])
        )
        self.register_buffer(
            "visual_knobs", torch.tensor([visual_weight, params.visual_temperature])
        )
        # (V, D) unit rows (zero rows: no picture), or (V, 0) when there is no visual part.
        self.register_buffer("visual", nn.functional.normalize(visual.detach().float(), dim=1))
        self.eps = float(eps)

    @property
    def num_emojis(self) -> int:
        return int(self.affinity.shape[1])

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors
    ) -> None:
        if local_metadata.get("version", 1) < 2:
            for key, value in self._LEGACY.items():
                state_dict.setdefault(prefix + key, torch.tensor(value))
            state_dict.setdefault(prefix + "visual", torch.zeros(self.num_emojis, 0))
        visual = state_dict.get(prefix + "visual")
        if isinstance(visual, torch.Tensor) and visual.shape != self.visual.shape:
            # Emoji pictures are optional (only the shipped backbone has them): the stored
            # table decides whether this head uses them.
            self.visual = torch.zeros_like(visual, device=self.visual.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing, unexpected, errors
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features → (N, V) logits; sigmoid gives calibrated scores in [0, 1]."""
        class_logits = nn.functional.linear(features, self.imagenet_weight, self.imagenet_bias)
        probs = torch.softmax(class_logits / self.class_temperature, dim=-1)  # (N, 1000)
        scores = probs @ self.affinity  # (N, V), each in [0, 1] since rows of probs sum to 1
        # As a distribution over the emojis (version 1 heads: unchanged).
        total = scores.sum(dim=-1, keepdim=True).clamp_min(1e-9)  # (N, 1)
        scores = scores / (self.normalise * total + (1.0 - self.normalise))
        if self.visual.shape[1] > 0:
            sim = nn.functional.normalize(features, dim=1) @ self.visual.T  # (N, V) cosine
            has_picture = self.visual.abs().sum(dim=1) > 0  # (V,)
            sim = sim.masked_fill(~has_picture, float("-inf"))
            weight, temperature = self.visual_knobs[0], self.visual_knobs[1]
            looks = torch.softmax(sim / temperature, dim=-1)  # (N, V)
            scores = (1.0 - weight) * scores + weight * looks
        w = self.prior_weight
        scores = scores * ((1.0 - w) + w * self.prior)  # (N, V)
        # A floor proportional to the prior: emojis no recognised concept maps to (all of
        # them, for a photo of something ImageNet lacks) rank by usage instead of arbitrarily.
        scores = (scores + PRIOR_FLOOR * self.prior).clamp(self.eps, 1.0 - self.eps)
        logit = torch.log(scores) - torch.log1p(-scores)  # (N, V)
        return self.calibration[0] * logit + self.calibration[1]

    @classmethod
    def skeleton(cls, num_features: int, num_emojis: int) -> ZeroShotHead:
        """An all-zero head of the right shapes, to ``load_state_dict`` a saved one into.

        Whether it uses emoji pictures (and their table's shape) comes from the saved state.
        """
        return cls(
            nn.Linear(num_features, NUM_CLASSES),
            torch.zeros(NUM_CLASSES, num_emojis),
            torch.zeros(num_emojis),
            params=ZeroShotParams(visual_weight=0.0),
        )

    @classmethod
    def from_backbone(cls, backbone: Backbone, vocab: Vocabulary) -> ZeroShotHead:
        """Build the head from a backbone's ImageNet classifier and the shipped concept map."""
        if backbone.imagenet_head is None:
            raise ConfigError(
                f"backbone {backbone.name!r} has no ImageNet classifier: the zero-shot head "
                "needs pretrained ImageNet weights (weights='imagenet' or a full weights file)"
            )
        params = ZeroShotParams.shipped()
        # The pictures' features are the default backbone's: other backbones skip that part.
        shipped_backbone = _concept_map().params.get("backbone", "efficientnet_lite0")
        visual = _emoji_pictures(vocab) if backbone.name == shipped_backbone else None
        return cls(
            backbone.imagenet_head,
            affinity_matrix(vocab),
            frequency_prior(vocab),
            params=params,
            visual=visual,
        )
