"""The classifier's training checkpoint beyond the model: :class:`TrainState` (where in an
epoch a run is), the optimiser, scheduler, AMP scaler and RNG states, written with
:func:`emojinet.checkpoint.save_checkpoint` and restored so that a resumed run repeats an
uninterrupted one bit for bit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emojinet.checkpoint import save_checkpoint
from emojinet.model import EmojiNet
from training.run_dir import Progress
from training.utils import get_rng_state, set_rng_state

__all__ = ["TrainState", "restore_training", "save_training"]


@dataclass
class TrainState(Progress):
    """:class:`Progress` plus this epoch so far (a checkpoint may be written mid-epoch)."""

    position: int = 0  # samples of this epoch already seen by this rank
    loss_sum: float = 0.0
    n_seen: int = 0

    def next_epoch(self) -> None:
        self.epoch += 1
        self.position, self.loss_sum, self.n_seen = 0, 0.0, 0


def save_training(
    path: Path,
    model: EmojiNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    scaler: torch.amp.GradScaler | None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Atomically write a checkpoint that :func:`restore_training` resumes from."""
    extra: dict[str, Any] = {
        "position": state.position,
        "loss_sum": state.loss_sum,
        "n_seen": state.n_seen,
        "best": state.best,
        "rng": get_rng_state(),
    }
    if scaler is not None:
        extra["scaler"] = scaler.state_dict()
    save_checkpoint(
        path,
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        epoch=state.epoch,
        step=state.step,
        metrics=metrics,
        extra=extra,
    )


def restore_training(
    ckpt: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> TrainState:
    """Load the optimiser, scheduler, scaler and RNG states of ``ckpt``; return its progress."""
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    extra = ckpt["extra"]
    if scaler is not None and "scaler" in extra:
        scaler.load_state_dict(extra["scaler"])
    set_rng_state(extra["rng"])
    return TrainState(
        epoch=int(ckpt["epoch"]),
        step=int(ckpt["step"]),
        best=float(extra["best"]),
        position=int(extra["position"]),
        loss_sum=float(extra["loss_sum"]),
        n_seen=int(extra["n_seen"]),
    )
