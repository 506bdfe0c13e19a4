"""Distillation from the built-in zero-shot model: its soft labels, mixed into the targets.

The teacher is the zero-shot head (:mod:`emojinet.zeroshot`) over the run's vocabulary, on the
same pretrained backbone as the student. With the backbone's first stages frozen and cached
(``--cache-features``) the teacher runs once over those cached outputs, so what it costs is one
pass of the remaining stages. The student then learns from

    target = (1 - w) * label + w * teacher        (pictures with labels)
    target = teacher                              (pictures without: ``"emojis": []``)

so what the pretrained model knows about photographs is kept while the labels teach the rest.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from emojinet.model import EmojiNet, build_model
from training.errors import OptionsError
from training.features import Tail

__all__ = ["mix_targets", "teacher_probs"]


@torch.no_grad()
def teacher_probs(
    student: EmojiNet,
    cached: torch.Tensor,
    n_stages: int,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> torch.Tensor:
    """(N, V) zero-shot probabilities over ``student``'s vocabulary, from the outputs of its
    first ``n_stages`` backbone stages (``cached``, as :mod:`training.features` stores them)."""
    cfg = student.cfg
    if cfg.weights == "none":
        raise OptionsError("distillation needs pretrained backbone weights (not --weights none)")
    teacher = build_model(replace(cfg, head="zeroshot", name="teacher"), student.vocab)
    tail = Tail(teacher, n_stages).to(device).eval()
    out = [
        torch.sigmoid(tail(cached[i : i + batch_size].to(device).float())).cpu()
        for i in range(0, len(cached), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, len(student.vocab))


def mix_targets(labels: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * labels + weight * teacher``; rows with no label take the teacher's."""
    if not 0.0 <= weight <= 1.0:
        raise OptionsError(f"--distill-weight must be in [0, 1], got {weight}")
    mixed = (1.0 - weight) * labels + weight * teacher
    unlabelled = labels.sum(dim=1) == 0
    mixed[unlabelled] = teacher[unlabelled]
    return mixed
