"""The EmojiGAN generator as served: :class:`GanConfig`, :class:`Generator`, :class:`EmojiGAN`.

After Barbieri et al., "EmojiGAN": instead of one score per emoji, a generator G(z, f(x))
draws an emoji *embedding* conditioned on the image's backbone features f(x); decoding each
draw to its nearest vocabulary emoji (cosine) and drawing many times gives the image's emoji
distribution.

The paper embeds emojis with emoji2vec (300-d), which no package ships; we use the 384-d
sentence embeddings of each emoji's name and aliases that ship with the zero-shot head.

Only what serving needs lives here. The critic and the gradient penalty that train the
generator are in ``training.gan_losses``; release files are read and written by
:mod:`emojinet.gan_io`.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from emojinet.vocab import Vocabulary

__all__ = ["EmojiGAN", "GanConfig", "Generator", "condition_encoder", "mlp"]


@dataclass(frozen=True)
class GanConfig:
    """Sizes of the generator (and of the critic that trains it); ``feature_dim`` is D."""

    feature_dim: int
    embed_dim: int = 384
    noise_dim: int = 64
    cond_dim: int = 256
    hidden: int = 512

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU(0.2) between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def condition_encoder(cfg: GanConfig) -> nn.Sequential:
    """(N, D) backbone features → (N, C) condition: Linear(D, C) + LeakyReLU(0.2)."""
    return nn.Sequential(nn.Linear(cfg.feature_dim, cfg.cond_dim), nn.LeakyReLU(0.2))


class Generator(nn.Module):
    """G(z, f) → a unit-norm emoji embedding."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cond = condition_encoder(cfg)
        self.net = mlp([cfg.noise_dim + cfg.cond_dim, cfg.hidden, cfg.hidden, cfg.embed_dim])

    def forward(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """z (N, Z), features (N, D) → (N, E) unit vectors."""
        h = torch.cat([z, self.cond(features)], dim=1)  # (N, Z + C)
        return nn.functional.normalize(self.net(h), dim=1)  # (N, E)


class EmojiGAN(nn.Module):
    """The serving half: a generator plus the vocabulary's embeddings, for decoding."""

    emoji_embeddings: torch.Tensor

    def __init__(self, cfg: GanConfig, vocab: Vocabulary, emoji_embeddings: torch.Tensor) -> None:
        super().__init__()
        if emoji_embeddings.shape != (len(vocab), cfg.embed_dim):
            raise ValueError(
                f"emoji_embeddings must be ({len(vocab)}, {cfg.embed_dim}), "
                f"got {tuple(emoji_embeddings.shape)}"
            )
        self.cfg = cfg
        self.vocab = vocab
        self.generator = Generator(cfg)
        unit = nn.functional.normalize(emoji_embeddings.float(), dim=1)
        self.register_buffer("emoji_embeddings", unit)  # (V, E)
        counts = torch.tensor(vocab.counts)  # (V,) real samples of each emoji in training
        # The emojis it was trained to draw: a model that answers over more emojis than its
        # data set labels (``--vocab all``) gives the GAN no real sample of the others, so a
        # draw never decodes to them. Without counts (all 0) every emoji is drawable.
        self.drawable = (
            counts > 0 if bool((counts > 0).any()) else torch.ones_like(counts, dtype=torch.bool)
        )

    def decode(self, e: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """(M, E) generated embeddings → (M,) nearest drawable vocabulary emoji by cosine."""
        sims = e @ self.emoji_embeddings.T  # (M, V)
        mask = self.drawable if allowed is None else self.drawable & allowed
        if allowed is not None and not bool(mask.any()):
            mask = allowed  # only undrawn emojis are allowed: decode to those rather than none
        return sims.masked_fill(~mask, float("-inf")).argmax(dim=1)

    @torch.no_grad()
    def sample(
        self,
        features: torch.Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` emojis per image.

        Args:
            features: (N, D) backbone features.
            n: draws per image.
            generator: torch RNG for the noise (reproducible draws).
            allowed: (V,) bool mask; deny-listed emojis are never decoded to.

        Returns:
            (N, n) long tensor of vocabulary indices.
        """
        num = features.shape[0]
        z = torch.randn(num * n, self.cfg.noise_dim, generator=generator)  # (N*n, Z)
        f = features.float().repeat_interleave(n, dim=0)  # (N*n, D)
        e = self.generator(z.to(f.device), f)  # (N*n, E)
        return self.decode(e, allowed).view(num, n)

    def scores(self, draws: torch.Tensor) -> np.ndarray:
        """(N, n) draws → (N, V) empirical frequencies (each row sums to 1)."""
        counts = torch.zeros(draws.shape[0], len(self.vocab))
        counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float32))
        return (counts / draws.shape[1]).numpy()
