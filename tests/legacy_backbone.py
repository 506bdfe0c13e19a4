"""A tiny registered backbone used by the legacy-artifact fixtures in ``tests/data/legacy``.

Two strided convolutions and a 1000-way "ImageNet" classifier: small enough that a release
artifact and a training checkpoint written by an older EmojiNet can live in git.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from emojinet.backbones import Backbone, list_backbones, register_backbone
from emojinet.preprocess import PreprocessConfig

NAME = "legacy_tiny"


def _tiny(*, weights: str = "imagenet") -> Backbone:
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
    body = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
    head = nn.Linear(16, 1000) if weights != "none" else None
    if weights not in ("imagenet", "none"):
        raise ValueError("legacy_tiny has no weight files")
    return Backbone(
        NAME, nn.Sequential(stem, body), 16, PreprocessConfig(32, 36), head, [stem, body]
    )


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """``legacy_tiny`` in the backbone registry for the duration of the block only."""
    from emojinet import backbones

    if NAME not in list_backbones():
        register_backbone(NAME)(_tiny)
    try:
        yield
    finally:
        backbones._REGISTRY.pop(NAME, None)


__all__ = ["NAME", "registered"]
