"""EmojiGAN head: a conditional WGAN-GP generator over emoji embeddings.

After Barbieri et al., "EmojiGAN": instead of one score per emoji, a generator G(z, f(x))
draws an emoji *embedding* conditioned on the image's backbone features f(x); decoding each
draw to its nearest vocabulary emoji (cosine) and drawing many times gives the image's emoji
distribution. The critic D(e, f(x)) is trained with the Wasserstein loss and a gradient penalty.

The paper embeds emojis with emoji2vec (300-d), which no package ships; we use the 384-d
sentence embeddings of each emoji's name and aliases that ship with the zero-shot head.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from emojinet.errors import CheckpointError
from emojinet.vocab import Vocabulary

__all__ = [
    "Critic",
    "EmojiGAN",
    "GanConfig",
    "Generator",
    "gradient_penalty",
    "load_gan",
    "save_gan",
]

FORMAT = "emojinet-gan/1"


@dataclass(frozen=True)
class GanConfig:
    """Sizes of the generator and critic. ``feature_dim`` is the backbone's D."""

    feature_dim: int
    embed_dim: int = 384
    noise_dim: int = 64
    cond_dim: int = 256
    hidden: int = 512

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """G(z, f) → a unit-norm emoji embedding."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cond = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.cond_dim), nn.LeakyReLU(0.2))
        self.net = _mlp([cfg.noise_dim + cfg.cond_dim, cfg.hidden, cfg.hidden, cfg.embed_dim])

    def forward(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """z (N, Z), features (N, D) → (N, E) unit vectors."""
        h = torch.cat([z, self.cond(features)], dim=1)  # (N, Z + C)
        return nn.functional.normalize(self.net(h), dim=1)  # (N, E)


class Critic(nn.Module):
    """D(e, f) → a real-valued score (no sigmoid, no batch norm: WGAN-GP)."""

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cond = nn.Sequential(nn.Linear(cfg.feature_dim, cfg.cond_dim), nn.LeakyReLU(0.2))
        self.net = _mlp([cfg.embed_dim + cfg.cond_dim, cfg.hidden, cfg.hidden, 1])

    def forward(self, e: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """e (N, E), features (N, D) → (N,) scores."""
        out: torch.Tensor = self.net(torch.cat([e, self.cond(features)], dim=1))  # (N, 1)
        return out.squeeze(1)


def gradient_penalty(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    features: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gulrajani et al. 2017: E[(‖∇ₓ̂ D(x̂, f)‖₂ − 1)²] on random interpolates x̂.

    Args:
        real, fake: (N, E) embeddings; features: (N, D) the condition.
        alpha: (N, 1) interpolation weights; uniform random when None.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)  # (N, E)
    scores = critic(x_hat, features)  # (N,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (N, E)
    penalty: torch.Tensor = ((grad.norm(2, dim=1) - 1.0) ** 2).mean()
    return penalty


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

    def decode(self, e: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """(M, E) generated embeddings → (M,) nearest vocabulary emoji by cosine."""
        sims = e @ self.emoji_embeddings.T  # (M, V)
        if allowed is not None:
            sims = sims.masked_fill(~allowed, float("-inf"))
        return sims.argmax(dim=1)

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


def save_gan(
    gan: EmojiGAN,
    path: str | Path,
    *,
    backbone_sha256: str,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Write the generator as a release artifact (``NAME.safetensors`` + ``NAME.json``).

    ``backbone_sha256`` names the classifier release whose features the GAN was trained on:
    features from another backbone mean nothing to it, so the service checks this.
    """
    from emojinet.checkpoint import write_safetensors_release

    meta = {
        "format": FORMAT,
        "config": gan.cfg.to_dict(),
        "vocab": gan.vocab.to_dict(),
        "backbone_sha256": backbone_sha256,
        "metrics": dict(metrics or {}),
    }
    return write_safetensors_release(path, gan.state_dict(), meta)


def load_gan(path: str | Path) -> tuple[EmojiGAN, dict[str, Any]]:
    """Load a GAN release artifact; errors say what is wrong."""
    from emojinet.checkpoint import file_sha256, release_paths

    weights, meta_path = release_paths(path)
    for p in (meta_path, weights):
        if not p.is_file():
            raise CheckpointError(f"GAN artifact incomplete: {p} does not exist")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not EmojiGAN metadata (format {FORMAT})")
    if file_sha256(weights) != meta.get("sha256"):
        raise CheckpointError(f"{weights} does not match the sha256 in {meta_path}")
    try:
        state = load_file(str(weights))
        cfg = GanConfig(**meta["config"])
        vocab = Vocabulary(tuple(meta["vocab"]["emojis"]), tuple(meta["vocab"]["counts"]))
        gan = EmojiGAN(cfg, vocab, state["emoji_embeddings"])
        gan.load_state_dict(state, strict=True)
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a loadable EmojiGAN artifact ({exc})") from exc
    return gan.eval(), meta
