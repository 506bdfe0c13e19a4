"""What trains the EmojiGAN generator and nothing serves: the WGAN-GP :class:`Critic` and
:func:`gradient_penalty` (the service never imports this module)."""

from __future__ import annotations

import torch
from torch import nn

from emojinet.gan import GanConfig, condition_encoder, mlp

__all__ = ["Critic", "gradient_penalty"]


class Critic(nn.Module):
    """D(e, f) = MLP([e, c]) + e·P c with c = cond(f): a real-valued score (no sigmoid, no batch
    norm: WGAN-GP).

    The projection term e·P c (Miyato & Koyama, "cGANs with projection discriminator") lets the
    critic's slope in e depend on the image. Without it, the concatenation MLP learned one slope
    for every image (≈ the mean real embedding): the generator then sent every draw of every
    image to that one point and the critic could not push it back (W stuck below 0, a single
    emoji for all 500-emoji clip-art pictures).
    """

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cond = condition_encoder(cfg)
        self.net = mlp([cfg.embed_dim + cfg.cond_dim, cfg.hidden, cfg.hidden, 1])
        self.proj = nn.Linear(cfg.cond_dim, cfg.embed_dim, bias=False)

    def forward(self, e: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """e (N, E), features (N, D) → (N,) scores."""
        c = self.cond(features)  # (N, C)
        out: torch.Tensor = self.net(torch.cat([e, c], dim=1)).squeeze(1)  # (N,)
        slope: torch.Tensor = self.proj(c)  # (N, E): the image's direction of "more real"
        return out + (e * slope).sum(1)  # (N,)


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
