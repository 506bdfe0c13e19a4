"""EmojiNet: a backbone's pooled features → a multi-label head over an emoji vocabulary."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import nn

from emojinet.backbones import Backbone, get_backbone
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary

__all__ = ["EmojiNet", "EmojiNetConfig", "build_model"]

HeadKind = Literal["linear", "zeroshot"]


@dataclass(frozen=True)
class EmojiNetConfig:
    """Everything needed to rebuild a model's architecture (the weights travel separately).

    Attributes:
        backbone: a name from :func:`emojinet.backbones.list_backbones`.
        head: ``"zeroshot"`` maps ImageNet classes to emojis by text similarity (no training);
            ``"linear"`` is a trainable multi-label layer.
        weights: backbone weights at build time: ``"imagenet"``, ``"none"`` or a file path.
        vocab: ``"default"`` (top-500), ``"all"`` or a vocabulary file; only used when
            :func:`build_model` is not given a vocabulary.
        dropout: dropout before the linear head.
        name: a label shown by the service and CLI.
    """

    backbone: str = "efficientnet_lite0"
    head: HeadKind = "zeroshot"
    weights: str = "imagenet"
    vocab: str = "default"
    dropout: float = 0.2
    name: str = "emojinet-zeroshot"

    def __post_init__(self) -> None:
        if self.head not in ("linear", "zeroshot"):
            raise ValueError(f"unknown head {self.head!r}; choose 'linear' or 'zeroshot'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmojiNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**d)


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
        return self.backbone.preprocess

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

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, V) independent per-emoji probabilities in [0, 1]."""
        return torch.sigmoid(self(x))


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


def build_model(cfg: EmojiNetConfig, vocab: Vocabulary | None = None) -> EmojiNet:
    """Build a model from its config; ``vocab`` overrides ``cfg.vocab``."""
    vocab = vocab if vocab is not None else Vocabulary.resolve(cfg.vocab)
    backbone = get_backbone(cfg.backbone, weights=cfg.weights)
    head: nn.Module
    if cfg.head == "zeroshot":
        from emojinet.zeroshot import ZeroShotHead, shipped_crop

        if backbone.imagenet_head is None:
            raise ValueError(
                "the zero-shot head needs the backbone's ImageNet classifier: build it with "
                "weights='imagenet' or a weights file that includes the classifier"
            )
        head = ZeroShotHead.from_backbone(backbone, vocab)
        # The concept map's knobs were chosen for this view of the picture (whole or centre).
        backbone.preprocess = replace(backbone.preprocess, crop=shipped_crop())
    else:
        head = LinearHead(backbone.num_features, vocab, cfg.dropout)
    return EmojiNet(cfg, vocab, backbone, head)
