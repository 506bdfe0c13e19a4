"""How the classifier is optimised: layer-wise learning rates over the backbone's stages
(freezing the first ones), and linear warm-up then cosine decay."""

from __future__ import annotations

import math
from typing import Any

import torch

from emojinet.model import EmojiNet
from training.errors import OptionsError

__all__ = ["make_scheduler", "param_groups"]


def param_groups(model: EmojiNet, lr: float, lr_decay: float, freeze: int) -> list[dict[str, Any]]:
    """One group per trainable stage, stage i of S at ``lr × lr_decay^(S-i)``; the head at lr.

    The first ``freeze`` stages stop requiring gradients.
    """
    stages = model.backbone.stages()
    if not 0 <= freeze <= len(stages):
        raise OptionsError(f"--freeze-stages must be between 0 and {len(stages)}, got {freeze}")
    groups: list[dict[str, Any]] = []
    for i, stage in enumerate(stages):
        trainable = i >= freeze
        for p in stage.parameters():
            p.requires_grad_(trainable)
        if trainable:
            mult = lr_decay ** (len(stages) - i)
            groups.append(
                {"params": list(stage.parameters()), "lr": lr * mult, "name": f"stage{i}"}
            )
    groups.append({"params": list(model.head.parameters()), "lr": lr, "name": "head"})
    return [g for g in groups if g["params"]]


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
