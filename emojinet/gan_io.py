"""EmojiGAN release artifacts: :func:`save_gan` and :func:`load_gan` (``NAME.safetensors`` +
``NAME.json`` with the config, vocabulary, sha256 and the backbone the GAN was trained on)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from emojinet.artifacts import read_release, write_safetensors_release
from emojinet.checkpoint import resolve_release
from emojinet.errors import CheckpointError
from emojinet.gan import EmojiGAN, GanConfig
from emojinet.vocab import Vocabulary

__all__ = ["FORMAT", "gan_from_state", "load_gan", "save_gan"]

FORMAT = "emojinet-gan/1"


def save_gan(
    gan: EmojiGAN,
    path: str | Path,
    *,
    backbone_sha256: str,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the generator as a release artifact (``NAME.safetensors`` + ``NAME.json``).

    ``backbone_sha256`` names the classifier release whose features the GAN was trained on:
    features from another backbone mean nothing to it, so the service checks this. Metrics
    that do not exist (NaN) are left out: the metadata is strict JSON.
    """
    meta = {
        "format": FORMAT,
        "config": gan.cfg.to_dict(),
        "vocab": gan.vocab.to_dict(),
        "backbone_sha256": backbone_sha256,
        "metrics": {k: v for k, v in (metrics or {}).items() if math.isfinite(v)},
    }
    return write_safetensors_release(path, gan.state_dict(), meta)


def gan_from_state(
    config: dict[str, Any], vocab: dict[str, Any], state: dict[str, torch.Tensor]
) -> EmojiGAN:
    """Rebuild an :class:`EmojiGAN` from its stored config, vocabulary and state dict.

    Raises ``KeyError``, ``TypeError``, ``ValueError`` or ``RuntimeError`` when they do not fit.
    """
    emojis = Vocabulary(tuple(vocab["emojis"]), tuple(vocab["counts"]))
    gan = EmojiGAN(GanConfig(**config), emojis, state["emoji_embeddings"])
    gan.load_state_dict(state, strict=True)
    return gan


def load_gan(path: str | Path) -> tuple[EmojiGAN, dict[str, Any]]:
    """Load a GAN release artifact (sha256 checked); errors say what is wrong.

    ``path`` may also name a GAN shipped with the package (``emoji500-gan``), as
    :func:`emojinet.checkpoint.load` does for models.
    """
    path = resolve_release(path)
    state, meta = read_release(path, fmt=FORMAT)
    try:
        gan = gan_from_state(meta["config"], meta["vocab"], state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a loadable EmojiGAN artifact ({exc})") from exc
    return gan.eval(), meta
