"""The classifier's training loop, one epoch at a time (:func:`train_one_epoch`), and
:func:`evaluate`, which scores every example of a loader (validation and ``emojinet evaluate``).

As in torchvision's references: the script (:mod:`training.train`) sets up, this module runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.datasets import EmojiImageDataset, EpochSampler
from training.features import TensorItems
from training.metrics import evaluate_scores
from training.train_checkpoint import TrainState

__all__ = ["evaluate", "set_train_mode", "train_one_epoch"]


def set_train_mode(module: nn.Module, frozen: Sequence[nn.Module]) -> None:
    """Train mode, except frozen stages keep their BatchNorm statistics (eval mode)."""
    module.train()
    for stage in frozen:
        stage.eval()


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data_loader: DataLoader[Any],
    device: torch.device,
    state: TrainState,
    *,
    frozen: Sequence[nn.Module] = (),
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    on_step: Callable[[TrainState], None] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """One epoch, or the rest of it after ``state.position`` samples (a resumed run).

    ``frozen`` stages stay in eval mode (their BatchNorm statistics do not move). Returns the
    mean loss, the last learning rate, throughput and seconds.
    """
    t0 = time.time()
    if isinstance(data_loader.sampler, EpochSampler):
        data_loader.sampler.set_epoch(state.epoch, start=state.position)
    if isinstance(data_loader.dataset, EmojiImageDataset | TensorItems):
        data_loader.dataset.set_epoch(state.epoch)
    set_train_mode(model, frozen)
    images = 0
    amp = scaler is not None
    bar = tqdm(
        data_loader, desc=f"epoch {state.epoch}", unit="batch", disable=not progress, leave=False
    )
    for x, y, _ in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        n = len(x)
        state.step += 1
        state.position += n
        state.loss_sum += float(loss.detach()) * n
        state.n_seen += n
        images += n
        if progress:
            rate = images / max(time.time() - t0, 1e-9)
            bar.set_postfix(loss=f"{state.loss_sum / state.n_seen:.4f}", img_s=f"{rate:.0f}")
        if on_step is not None:
            on_step(state)
    elapsed = time.time() - t0
    return {
        "train_loss": state.loss_sum / max(state.n_seen, 1),
        "lr": optimizer.param_groups[-1]["lr"],
        "images_per_s": images / max(elapsed, 1e-9),
        "epoch_s": elapsed,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data_loader: DataLoader[Any],
    device: torch.device,
    emojis: list[str],
    *,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Scores of every example; returns (metrics, probabilities (N, V), targets (N, V))."""
    model.eval()
    probs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for x, y, _ in tqdm(data_loader, desc=desc, unit="batch", disable=not progress, leave=False):
        x = x.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        probs.append(torch.sigmoid(model(x).float()).cpu())
        targets.append(y)
    p = torch.cat(probs).numpy().astype(np.float64)
    t = torch.cat(targets).numpy().astype(np.float64)
    return evaluate_scores(p, t, emojis), p, t
