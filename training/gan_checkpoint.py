"""What one GAN training run is and how it resumes: :class:`GanHParams` (the optimisation
settings), :class:`GanState` (its progress), the checkpoint that holds both nets and
optimisers (:func:`save_gan_checkpoint`, :func:`load_gan_checkpoint`, :func:`restore_gan`)
and :func:`export_gan`, which turns one into a release artifact."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from emojinet.artifacts import atomic_write
from emojinet.errors import CheckpointError
from emojinet.gan import EmojiGAN
from emojinet.gan_io import gan_from_state, save_gan
from training.errors import OptionsError, ResumeError
from training.gan_losses import Critic
from training.run_dir import Progress
from training.weights import WEIGHT_SCHEMES

__all__ = [
    "GanHParams",
    "GanState",
    "export_gan",
    "load_gan_checkpoint",
    "restore_gan",
    "save_gan_checkpoint",
]

FORMAT = "emojinet-gan-checkpoint/1"


@dataclass(frozen=True)
class GanHParams:
    """The optimisation settings of one GAN run (saved in checkpoints and config.json)."""

    epochs: int = 10
    batch_size: int = 64
    n_critic: int = 5
    gp_lambda: float = 10.0
    lr: float = 1e-4
    beta1: float = 0.1
    beta2: float = 0.9
    sample_weights: str = "exp"
    exp_k: float = 10.0
    seed: int = 0
    val_draws: int = 50

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> GanHParams:
        """From ``emojinet train-gan``'s options, which carry the same names."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def __post_init__(self) -> None:
        if self.sample_weights not in WEIGHT_SCHEMES:
            raise OptionsError(
                f"unknown sample weighting {self.sample_weights!r}; "
                f"choose one of {', '.join(WEIGHT_SCHEMES)}"
            )
        if self.n_critic < 1 or self.batch_size < 1 or self.epochs < 0:
            raise OptionsError("n_critic and batch_size must be >= 1 and epochs >= 0")


@dataclass
class GanState(Progress):
    """:class:`Progress` of a GAN run; ``step`` counts critic steps."""


@dataclass(frozen=True)
class GanNets:
    """The generator and critic with their optimisers: what a checkpoint stores and restores."""

    gan: EmojiGAN
    critic: Critic
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer


def save_gan_checkpoint(
    path: Path,
    nets: GanNets,
    hp: GanHParams,
    state: GanState,
    *,
    backbone_sha256: str,
    metrics: dict[str, float],
) -> None:
    """Atomically write everything needed to resume (and to export the generator)."""
    ckpt = {
        "format": FORMAT,
        "gan": {k: v.detach().cpu() for k, v in nets.gan.state_dict().items()},
        "critic": {k: v.detach().cpu() for k, v in nets.critic.state_dict().items()},
        "opt_g": nets.opt_g.state_dict(),
        "opt_c": nets.opt_c.state_dict(),
        "config": nets.gan.cfg.to_dict(),
        "vocab": nets.gan.vocab.to_dict(),
        "hparams": asdict(hp),
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "backbone_sha256": backbone_sha256,
        "metrics": dict(metrics),
    }
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_gan_checkpoint(path: str | Path) -> tuple[EmojiGAN, dict[str, Any]]:
    """The generator (as an :class:`EmojiGAN`) and the raw checkpoint dictionary."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable GAN checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an EmojiGAN training checkpoint")
    try:
        gan = gan_from_state(ckpt["config"], ckpt["vocab"], ckpt["gan"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a loadable EmojiGAN checkpoint ({exc})") from exc
    return gan, ckpt


def restore_gan(path: Path, nets: GanNets, *, backbone_sha256: str) -> GanState:
    """Load ``path`` into ``nets``; it must come from a run on the same features and config."""
    _, ckpt = load_gan_checkpoint(path)
    if ckpt["backbone_sha256"] != backbone_sha256:
        raise ResumeError(
            f"{path} was trained on the features of model {ckpt['backbone_sha256'][:12]}…, "
            f"not {backbone_sha256[:12]}…"
        )
    if ckpt["config"] != nets.gan.cfg.to_dict():
        raise ResumeError(f"{path} has GAN config {ckpt['config']}, not {nets.gan.cfg.to_dict()}")
    nets.gan.load_state_dict(ckpt["gan"])
    nets.critic.load_state_dict(ckpt["critic"])
    nets.opt_g.load_state_dict(ckpt["opt_g"])
    nets.opt_c.load_state_dict(ckpt["opt_c"])
    return GanState(int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt["best"]))


def export_gan(checkpoint: str | Path, path: str | Path) -> dict[str, Any]:
    """Write a GAN training checkpoint's generator as a release artifact (:func:`save_gan`)."""
    gan, ckpt = load_gan_checkpoint(checkpoint)
    metrics = {
        k: float(v) for k, v in ckpt["metrics"].items() if k.startswith("val_") or k == "epoch"
    }
    return save_gan(gan, path, backbone_sha256=ckpt["backbone_sha256"], metrics=metrics)
