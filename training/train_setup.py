"""Setting up a classifier training run: the :class:`Runtime` (device, torchrun, AMP,
channels_last, progress bars), the model (new, with its input size resolved from the options
over the backbone's default, or taken from the checkpoint to resume) and option checks."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emojinet.backbones import list_backbones
from emojinet.backends import select_device
from emojinet.checkpoint import load_checkpoint
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.preprocess import PreprocessConfig
from emojinet.vocab import Vocabulary
from training.distributed import DistInfo, init_distributed
from training.errors import OptionsError, ResumeError
from training.options import show_progress
from training.utils import configure_torch

__all__ = ["Runtime", "build_classifier", "check_args", "resolve_preprocess"]


def check_args(args: argparse.Namespace) -> None:
    """Options, and combinations of them, that cannot work fail before any data is read."""
    if args.backbone not in list_backbones():
        raise OptionsError(
            f"unknown backbone {args.backbone!r}; choose one of {', '.join(list_backbones())}"
        )
    if args.cache_features and args.freeze_stages < 1:
        raise OptionsError(
            "--cache-features needs --freeze-stages >= 1 (the frozen stages are cached)"
        )
    if args.distill_weight > 0 and not args.cache_features:
        raise OptionsError(
            "--distill-weight needs --cache-features: the teacher runs once over the cached "
            "outputs of the frozen stages"
        )


@dataclass(frozen=True)
class Runtime:
    """Where and how this process trains."""

    device: torch.device
    dist: DistInfo
    amp: bool
    channels_last: bool
    progress: bool  # progress bars (rank 0 only)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Runtime:
        """Threads and determinism, the device, and the process group under torchrun."""
        configure_torch(deterministic=args.deterministic, threads=args.threads)
        device = select_device(args.device)
        dist_info = init_distributed(device)
        if device.type == "cuda" and dist_info.enabled:
            device = torch.device("cuda", dist_info.local_rank)
        cuda = device.type == "cuda"
        return cls(
            device,
            dist_info,
            amp=cuda if args.amp is None else args.amp,
            channels_last=cuda if args.channels_last is None else args.channels_last,
            progress=show_progress(args) and dist_info.is_main,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "amp": self.amp,
            "channels_last": self.channels_last,
        }

    def place(self, model: EmojiNet) -> EmojiNet:
        """``model`` on the device (channels_last when asked)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16 autocast on CUDA; None otherwise."""
        return torch.amp.GradScaler("cuda") if self.amp and self.device.type == "cuda" else None

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel under torchrun; the module itself otherwise."""
        if not self.dist.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def resolve_preprocess(args: argparse.Namespace, default: PreprocessConfig) -> PreprocessConfig:
    """``--input-size`` / ``--resize-size`` over the backbone's default preprocessing."""
    size = args.input_size or default.input_size
    resize = args.resize_size or (
        default.resize_size if args.input_size is None else round(size * 8 / 7)
    )
    if resize < size:
        raise OptionsError(f"--resize-size ({resize}) must be at least --input-size ({size})")
    return replace(
        default, input_size=size, resize_size=resize, crop=getattr(args, "view", "center")
    )


def build_classifier(
    args: argparse.Namespace, vocab: Vocabulary, resume: Path | None
) -> tuple[EmojiNet, dict[str, Any] | None]:
    """A new model (backbone weights from ``--weights``), or the one in the checkpoint to
    resume from with its checkpoint dictionary. ``vocab`` carries this run's training counts."""
    if resume is not None:
        model, ckpt = load_checkpoint(resume)
        if model.cfg.backbone != args.backbone:
            raise ResumeError(f"{resume} holds a {model.cfg.backbone} model, not {args.backbone}")
        if model.vocab.emojis != vocab.emojis:
            raise ResumeError(f"{resume} was trained on another vocabulary than {args.data}'s")
        model.vocab = vocab
        return model, ckpt
    cfg = EmojiNetConfig(
        backbone=args.backbone,
        head=getattr(args, "head", "linear"),
        weights=args.weights,
        vocab="all"
        if getattr(args, "vocab", "data") == "all"
        else str(Path(args.data) / "vocab.json"),
        dropout=args.dropout,
        name=args.name or f"emojinet-{args.backbone}-{Path(args.data).name}",
    )
    model = build_model(cfg, vocab)  # the backbone's default preprocessing, then ours:
    pre = resolve_preprocess(args, model.preprocess)
    return EmojiNet(replace(model.cfg, preprocess=pre), vocab, model.backbone, model.head), None
