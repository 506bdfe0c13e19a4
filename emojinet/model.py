"""The model and its one builder.

Owns :class:`EmojiNetConfig` (everything needed to rebuild a model, preprocessing included, as
timm's ``pretrained_cfg``), :class:`EmojiNet` (backbone features → a multi-label head over an
emoji vocabulary) and :func:`build_model`, the only place a model is assembled: loading a saved
one is ``build_model(cfg, vocab, pretrained=False)`` + ``load_state_dict`` (see
:mod:`emojinet.checkpoint`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import nn

from emojinet.backbones import Backbone, get_backbone
from emojinet.errors import ConfigError
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary

__all__ = ["EmojiNet", "EmojiNetConfig", "LinearHead", "ResidualHead", "build_model"]

HeadKind = Literal["linear", "zeroshot", "residual"]


@dataclass(frozen=True)
class EmojiNetConfig:
    """Everything needed to rebuild a model's architecture (the weights travel separately).

    Attributes:
        backbone: a name from :func:`emojinet.backbones.list_backbones`.
        head: ``"zeroshot"`` maps ImageNet classes to emojis by text similarity (no training);
            ``"linear"`` is a trainable multi-label layer; ``"residual"`` is the zero-shot head
            plus a trained linear correction of its logits (zero at the start, so training
            begins from the zero-shot model and weight decay pulls back towards it).
        weights: backbone weights at build time: ``"imagenet"``, ``"none"`` or a file path.
        vocab: ``"default"`` (top-500), ``"all"`` or a vocabulary file; only used when
            :func:`build_model` is not given a vocabulary.
        dropout: dropout before the linear head.
        name: a label shown by the service and CLI.
        preprocess: input size, resize, normalisation and view the model expects; ``None``
            means the backbone's default (and, for the zero-shot head, the view its shipped
            knobs were chosen for). :func:`build_model` always fills it in, so a built model's
            ``cfg.preprocess`` is concrete and travels with its weights.
    """

    backbone: str = "efficientnet_lite0"
    head: HeadKind = "zeroshot"
    weights: str = "imagenet"
    vocab: str = "default"
    dropout: float = 0.2
    name: str = "emojinet-zeroshot"
    preprocess: PreprocessConfig | None = None

    def __post_init__(self) -> None:
        if self.head not in ("linear", "zeroshot", "residual"):
            raise ConfigError(
                f"unknown head {self.head!r}; choose 'linear', 'zeroshot' or 'residual'"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmojiNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; known keys: {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("preprocess"), dict):
            d["preprocess"] = PreprocessConfig.from_dict(d["preprocess"])
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid model config: {exc}") from exc


class EmojiNet(nn.Module):
    """Backbone → ``forward_features`` (N, D) → ``forward_head`` (N, V) logits."""

    def __init__(self, cfg: EmojiNetConfig, vocab: Vocabulary, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab
        self.backbone = backbone
        self.head = head

    @property
    def preprocess(self) -> PreprocessConfig:
        """How inputs must be prepared: stored once, in the config (read-only)."""
        assert self.cfg.preprocess is not None  # build_model fills it in
        return self.cfg.preprocess

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, D)."""
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) → (N, V) logits; ``sigmoid`` gives per-emoji probabilities."""
        logits: torch.Tensor = self.head(features)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class LinearHead(nn.Module):
    """Dropout + Linear(D, V); the bias starts at the log-odds of each emoji's frequency."""

    def __init__(self, num_features: int, vocab: Vocabulary, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(num_features, len(vocab))
        with torch.no_grad():
            nn.init.normal_(self.fc.weight, std=0.01)
            # Rare emojis start with low scores instead of 0.5: far fewer false positives early on.
            prior = [min(max(f, 1e-4), 0.5) for f in vocab.frequencies()]
            self.fc.bias.copy_(torch.tensor([math.log(p / (1 - p)) for p in prior]))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.drop(features))  # (N, D) → (N, V)
        return logits


class ResidualHead(nn.Module):
    """A fixed zero-shot head plus a trained correction: ``zeroshot(f) + fc(dropout(f))``.

    The correction starts at zero, so an untrained head is exactly the zero-shot model; training
    moves only the emojis and pictures the labels speak about, and whatever they do not cover
    (photographs, when the labelled pictures are clip art) keeps the zero-shot answers.
    """

    def __init__(self, zeroshot: nn.Module, num_features: int, num_emojis: int, dropout: float):
        super().__init__()
        self.zeroshot = zeroshot  # buffers only: nothing in it is trained
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(num_features, num_emojis)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        base: torch.Tensor = self.zeroshot(features)  # (N, V) calibrated zero-shot logits
        correction: torch.Tensor = self.fc(self.drop(features))  # (N, V)
        return base + correction


def _zeroshot_head(backbone: Backbone, vocab: Vocabulary, pretrained: bool) -> nn.Module:
    """The zero-shot head for ``vocab`` (an all-zero skeleton when not ``pretrained``)."""
    from emojinet.zeroshot import ZeroShotHead

    if not pretrained:
        return ZeroShotHead.skeleton(backbone.num_features, len(vocab))
    if backbone.imagenet_head is None:
        raise ConfigError(
            "the zero-shot head needs the backbone's ImageNet classifier: build it with "
            "weights='imagenet' or a weights file that includes the classifier"
        )
    return ZeroShotHead.from_backbone(backbone, vocab)


def build_model(
    cfg: EmojiNetConfig, vocab: Vocabulary | None = None, *, pretrained: bool = True
) -> EmojiNet:
    """Build a model from its config; ``vocab`` overrides ``cfg.vocab``.

    ``pretrained=False`` builds the same architecture without fetching any weights, ready for
    ``load_state_dict`` (a zero-shot head is then an all-zero skeleton of the right shapes).
    The backbone's ImageNet classifier is only needed to build a zero-shot head (which copies
    it), so the built model does not keep it: built and loaded models have the same state keys.
    """
    vocab = vocab if vocab is not None else Vocabulary.resolve(cfg.vocab)
    backbone = get_backbone(cfg.backbone, weights=cfg.weights if pretrained else "none")
    head: nn.Module
    crop = "center"
    if cfg.head in ("zeroshot", "residual"):
        from emojinet.zeroshot import shipped_crop

        head = _zeroshot_head(backbone, vocab, pretrained)
        if cfg.head == "residual":
            head = ResidualHead(head, backbone.num_features, len(vocab), cfg.dropout)
        # The concept map's knobs were chosen for this view of the picture (whole or centre).
        crop = shipped_crop()
    else:
        head = LinearHead(backbone.num_features, vocab, cfg.dropout)
    backbone.imagenet_head = None
    if cfg.preprocess is None:
        cfg = replace(cfg, preprocess=replace(backbone.default_preprocess, crop=crop))
    return EmojiNet(cfg, vocab, backbone, head)
