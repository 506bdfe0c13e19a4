"""Cached backbone features: the outputs of a model's first stages, computed once per data
set split and stored in the run's ``cache/`` folder, and what trains or evaluates on them.

The classifier trainer caches its frozen stages (``--cache-features``) and trains a
:class:`Tail`; the GAN trainer and ``evaluate --distribution`` cache a classifier's pooled
features (:func:`backbone_features`) as a :class:`FeatureSet`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from emojinet.artifacts import atomic_write
from emojinet.backends import OnnxBackend
from emojinet.model import EmojiNet
from emojinet.vocab import Vocabulary
from training.datasets import image_dataset, targets_matrix
from training.distributed import DistInfo, barrier
from training.errors import DataError
from training.prepare import DatasetRecord

__all__ = [
    "FeatureSet",
    "Tail",
    "TensorItems",
    "backbone_features",
    "cached_stage_outputs",
    "compute_features",
]


@torch.no_grad()
def compute_features(
    model: EmojiNet,
    dataset: Dataset[Any],
    n_stages: int,
    device: torch.device,
    batch_size: int,
    workers: int,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    """Outputs of the first ``n_stages`` stages (pooled to (N, D) if that is all of them), fp16.

    The whole backbone on a CPU runs through ONNX Runtime when it is installed (about 5x
    faster than eager torch here, the same features to 1e-4): the backbone is frozen, so
    only its forward pass matters.
    """
    stages = model.backbone.stages()[:n_stages]
    for s in stages:
        s.eval()
    whole = n_stages == len(model.backbone.stages())
    onnx = _onnx_backbone(model) if whole and device.type == "cpu" else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out: list[torch.Tensor] = []
    for x, _, _ in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        if onnx is not None:
            feats = onnx.run(x.numpy(), features=True).features
            assert feats is not None  # exported with its features output
            out.append(torch.from_numpy(feats).half())
            continue
        x = x.to(device)
        for s in stages:
            x = s(x)
        if whole:
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # (N, D)
        out.append(x.half().cpu())
    return torch.cat(out)


def _onnx_backbone(model: EmojiNet) -> OnnxBackend | None:
    """The model exported to ONNX (cached by its digest), or None without ONNX Runtime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    return OnnxBackend.from_model(model)


def cached_stage_outputs(
    model: EmojiNet,
    dataset: Dataset[Any],
    records: Sequence[DatasetRecord],
    *,
    n_stages: int,
    cache_dir: Path,
    name: str,
    identity: Sequence[Any],
    device: torch.device,
    batch_size: int,
    workers: int,
    progress: bool,
    dist_info: DistInfo | None = None,
) -> torch.Tensor:
    """:func:`compute_features` of ``dataset``, cached as ``cache_dir/NAME-HASH.pt``.

    The hash covers ``identity`` (what decides the features: model, weights, preprocessing)
    and the records' ids and paths. Under torchrun rank 0 computes, every rank reads.
    """
    dist_info = dist_info or DistInfo()
    h = hashlib.sha256(json.dumps(list(identity)).encode())
    for r in records:
        h.update(f"{r.id}\t{r.image}\n".encode())
    path = cache_dir / f"{name}-{h.hexdigest()[:16]}.pt"
    if dist_info.is_main and not path.is_file():
        feats = compute_features(
            model, dataset, n_stages, device, batch_size, workers, progress, f"cache {name}"
        )
        atomic_write(path, lambda tmp: torch.save(feats, tmp))
    barrier(dist_info)
    feats = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(feats, torch.Tensor)
    return feats


class TensorItems(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Cached features with targets; items are ``(features, target, index)``."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        self.features, self.targets = features, targets

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[i].float(), self.targets[i], i

    def set_epoch(self, epoch: int) -> None:
        pass


class Tail(nn.Module):
    """The trainable part on top of cached frozen-stage outputs: stages[k:] → pool → head."""

    def __init__(self, model: EmojiNet, first_stage: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(model.backbone.stages()[first_stage:])
        self.head = model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        if x.ndim == 4:  # (N, C, h, w) → (N, C)
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        logits: torch.Tensor = self.head(x)  # (N, V)
        return logits


@dataclass(frozen=True)
class FeatureSet:
    """Backbone features with their multi-hot emoji labels."""

    features: torch.Tensor  # (N, D), fp16 or fp32
    targets: torch.Tensor  # (N, V) multi-hot, every row with at least one 1

    def __post_init__(self) -> None:
        if self.features.shape[0] != self.targets.shape[0]:
            raise DataError("features and targets must have the same number of rows")
        if (self.targets.sum(1) <= 0).any():
            raise DataError("every example needs at least one emoji")

    def __len__(self) -> int:
        return int(self.features.shape[0])


def backbone_features(
    model: EmojiNet,
    model_sha256: str,
    data: str | Path,
    records: Sequence[DatasetRecord],
    vocab: Vocabulary,
    cache_dir: Path,
    split: str,
    *,
    batch_size: int = 256,
    workers: int = 2,
    progress: bool = False,
) -> FeatureSet:
    """(N, D) fp16 pooled backbone features of ``records`` with their targets, cached.

    The cache key covers the model's sha256, its preprocessing and the records' ids and paths.
    """
    pre = model.preprocess
    feats = cached_stage_outputs(
        model,
        image_dataset(data, records, vocab, pre),
        records,
        n_stages=len(model.backbone.stages()),
        cache_dir=cache_dir,
        name=f"features-{split}",
        identity=[model_sha256, pre.to_dict()],
        device=torch.device("cpu"),
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    return FeatureSet(feats, targets_matrix(records, vocab))
