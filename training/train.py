"""Fine-tune an ImageNet backbone as a multi-label emoji classifier (``emojinet train``).

Plain functions, as in torchvision's reference scripts: :func:`get_args_parser`,
:func:`load_data`, :func:`make_optimizer`, :func:`train_one_epoch`, :func:`evaluate` and
:func:`main`. Runs alone or under ``torchrun`` (DistributedDataParallel, rank 0 writes).
The run folder is a :class:`~training.run_dir.RunDir`: ``config.json``, ``summary.csv``,
``checkpoint.pt`` (every epoch and every ``--checkpoint-every`` steps), ``best.pt`` (best
validation mAP, macro), ``metrics.json`` and ``cache/`` (``--cache-features``).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from emojinet.checkpoint import export_release, load_checkpoint
from emojinet.model import EmojiNet
from emojinet.presets import train_preset
from emojinet.vocab import Vocabulary
from training.datasets import (
    EmojiImageDataset,
    EpochSampler,
    image_dataset,
    select_split,
    targets_matrix,
)
from training.distill import mix_targets, teacher_probs
from training.distributed import barrier, cleanup
from training.engine import evaluate, train_one_epoch
from training.errors import TrainingError
from training.features import Tail, TensorItems, cached_stage_outputs
from training.metrics import scalars
from training.optim import make_scheduler, param_groups
from training.options import train_args_parser as get_args_parser
from training.prepare import DatasetRecord, read_dataset
from training.run_dir import RunDir
from training.train_checkpoint import TrainState, restore_training, save_training
from training.train_setup import Runtime, build_classifier, check_args
from training.utils import run_script, seed_everything
from training.weights import emoji_loss_weights

__all__ = [
    "evaluate",
    "get_args_parser",
    "load_data",
    "main",
    "make_optimizer",
    "train_one_epoch",
]

log = logging.getLogger(__name__)

VAL_METRICS = ("mAP_macro", "mAP_micro", "top1", "top5")
TRAIN_STATS = ("train_loss", "lr", "images_per_s", "epoch_s")  # from train_one_epoch
SUMMARY_FIELDS = ("epoch", "step", *TRAIN_STATS, *(f"val_{k}" for k in VAL_METRICS))


# -- data and optimiser ----------------------------------------------------------------------


@dataclass
class Splits:
    """The training and validation records of a prepared data set."""

    train: list[DatasetRecord]
    val: list[DatasetRecord]
    vocab: Vocabulary  # with this run's training-split counts

    @classmethod
    def read(cls, args: argparse.Namespace) -> Splits:
        records, vocab = read_dataset(args.data)
        if getattr(args, "vocab", "data") == "all":  # the data's emojis + the built-in model's
            vocab = Vocabulary((*vocab.emojis, *(e for e in Vocabulary.all() if e not in vocab)))
        # Pictures with no label teach only through the teacher's soft labels.
        train = select_split(records, "train", args.limit_train, unlabelled=args.distill_weight > 0)
        val = select_split(records, args.val_split, args.limit_val)
        doc_freq = [int(v) for v in targets_matrix(train, vocab).sum(0).tolist()]
        return cls(train, val, Vocabulary(vocab.emojis, tuple(doc_freq)))


@dataclass
class TrainData:
    """Training and validation sets with their loaders (images, or cached features)."""

    train_set: EmojiImageDataset | TensorItems
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]


def load_data(
    args: argparse.Namespace,
    model: EmojiNet,
    splits: Splits,
    run: RunDir,
    rt: Runtime,
) -> TrainData:
    """The shared presets over the images, or (``--cache-features``) the frozen stages'
    outputs computed once; a resumable :class:`EpochSampler` sharded over the ranks."""
    pre, seed, vocab = model.preprocess, args.seed, splits.vocab
    records = (splits.train, splits.val)
    augment = args.augment and not args.cache_features  # cached features are computed once
    tf = train_preset(pre, scale=(args.crop_scale, 1.0), hflip=args.hflip) if augment else None
    datasets: list[EmojiImageDataset | TensorItems] = [
        image_dataset(args.data, splits.train, vocab, pre, transform=tf, seed=seed),
        image_dataset(args.data, splits.val, vocab, pre, seed=seed),
    ]
    workers = args.workers
    if args.cache_features:
        identity = [args.backbone, args.weights, args.freeze_stages, pre.to_dict()]
        for i, name in enumerate(("train", args.val_split)):
            feats = cached_stage_outputs(
                model,
                datasets[i],
                records[i],
                n_stages=args.freeze_stages,
                cache_dir=run.cache,
                name=name,
                identity=identity,
                device=rt.device,
                batch_size=args.batch_size * 2,
                workers=args.workers,
                progress=rt.progress,
                dist_info=rt.dist,
            )
            targets = targets_matrix(records[i], vocab)
            if args.distill_weight > 0 and i == 0:  # soft labels teach; validation keeps 0/1
                teacher = teacher_probs(model, feats, args.freeze_stages, device=rt.device)
                targets = mix_targets(targets, teacher, args.distill_weight)
            datasets[i] = TensorItems(feats, targets)
        workers = 0
    sampler = EpochSampler(
        len(datasets[0]), seed=seed, rank=rt.dist.rank, world_size=rt.dist.world_size
    )
    train_loader = DataLoader(
        datasets[0],
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
        persistent_workers=False,
        pin_memory=rt.device.type == "cuda",
    )
    val_loader = DataLoader(
        datasets[1], batch_size=args.batch_size * 2, shuffle=False, num_workers=workers
    )
    return TrainData(datasets[0], train_loader, val_loader)


def make_optimizer(args: argparse.Namespace, model: EmojiNet) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) over :func:`~training.optim.param_groups` (freezes stages)."""
    groups = param_groups(model, args.lr, args.lr_decay, args.freeze_stages)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.momentum > 0,
    )


# -- main -------------------------------------------------------------------------------------


def make_criterion(
    args: argparse.Namespace, splits: Splits, device: torch.device
) -> nn.BCEWithLogitsLoss:
    """BCE with logits, each emoji weighted by ``--loss-weights`` (mean 1)."""
    counts, n = splits.vocab.counts, len(splits.train)
    weights = emoji_loss_weights(args.loss_weights, counts, n, k=args.exp_k)
    return nn.BCEWithLogitsLoss(weight=torch.tensor(weights).to(device))


def open_tensorboard(run: RunDir) -> Any:
    """A ``SummaryWriter`` in ``RUN/tb``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise TrainingError(
            "--tensorboard needs the tensorboard package (pip install tensorboard)"
        ) from exc
    return SummaryWriter(str(run.path / "tb"))


def log_scalars(writer: Any, row: dict[str, Any], step: int) -> None:
    """The epoch's floats to TensorBoard (``--tensorboard``)."""
    for k, v in row.items():
        if writer is not None and k != "epoch" and isinstance(v, float):
            writer.add_scalar(k, v, step)


def export_best(best: Path, dest: str, *, head_only: bool = False) -> None:
    """``--export``: ``best.pt`` as a release artifact with its validation metrics; with
    ``head_only`` (the whole backbone was frozen) without the pretrained backbone's weights."""
    model, ckpt = load_checkpoint(best)
    export_release(model, dest, metrics=ckpt["metrics"], with_backbone=not head_only)


def epoch_message(row: dict[str, Any]) -> str:
    return (
        f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  {row['images_per_s']:.0f} img/s  "
        f"val mAP {row['val_mAP_macro']:.4f}  top-1 {row['val_top1']:.4f}"
    )


def run_config(
    args: argparse.Namespace,
    model: EmojiNet,
    splits: Splits,
    rt: Runtime,
    criterion: nn.BCEWithLogitsLoss,
    steps_per_epoch: int,
) -> dict[str, Any]:
    """What ``config.json`` records: the options, the model, data sizes, runtime, loss weights."""
    return {
        "args": {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | None)},
        "model": model.cfg.to_dict(),
        "preprocess": model.preprocess.to_dict(),
        "vocab_size": len(splits.vocab),
        "train_examples": len(splits.train),
        "val_examples": len(splits.val),
        **rt.to_dict(),
        "loss_weights": [] if criterion.weight is None else criterion.weight.tolist(),
        "steps_per_epoch": steps_per_epoch,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train; returns the final validation metrics (rank 0; an empty dict on other ranks)."""
    check_args(args)
    rt = Runtime.from_args(args)
    run = RunDir(args.output_dir, SUMMARY_FIELDS, is_main=rt.dist.is_main)
    seed_everything(args.seed, rt.dist.rank)
    splits = Splits.read(args)
    resume = run.resume_path(args.resume)
    model, ckpt = build_classifier(args, splits.vocab, resume)
    rt.place(model)
    optimizer = make_optimizer(args, model)
    data = load_data(args, model, splits, run, rt)
    trainable = Tail(model, args.freeze_stages) if args.cache_features else model
    frozen = [] if args.cache_features else model.backbone.stages()[: args.freeze_stages]
    criterion = make_criterion(args, splits, rt.device)
    steps_per_epoch = len(data.train_loader)
    warmup = round(args.warmup_epochs * steps_per_epoch)
    scheduler = make_scheduler(optimizer, warmup, steps_per_epoch * args.epochs)
    scaler = rt.scaler()
    state = TrainState()
    if ckpt is not None and resume is not None:
        state = restore_training(ckpt, optimizer, scheduler, scaler)
        run.resumed(resume, state)
    ddp_model = rt.wrap(trainable)
    run.write_config(run_config(args, model, splits, rt, criterion, steps_per_epoch))
    writer = open_tensorboard(run) if args.tensorboard and rt.dist.is_main else None

    def save(path: Path, metrics: dict[str, float] | None = None) -> None:
        save_training(path, model, optimizer, scheduler, state, scaler, metrics)

    def on_step(s: TrainState) -> None:
        if args.checkpoint_every and s.step % args.checkpoint_every == 0 and rt.dist.is_main:
            save(run.checkpoint)
            run.say(f"checkpoint epoch {s.epoch} step {s.step} position {s.position}")

    metrics: dict[str, Any] = {}
    while state.epoch < args.epochs:
        stats = train_one_epoch(
            ddp_model, criterion, optimizer, scheduler, data.train_loader, rt.device, state,
            frozen=frozen, scaler=scaler, channels_last=rt.channels_last, on_step=on_step,
            progress=rt.progress,
        )  # fmt: skip
        if rt.dist.is_main:
            metrics, _, _ = evaluate(
                trainable, data.val_loader, rt.device, list(splits.vocab.emojis),
                channels_last=rt.channels_last, progress=rt.progress, desc=f"eval {args.val_split}",
            )  # fmt: skip
        barrier(rt.dist)
        row = {"epoch": state.epoch, "step": state.step, **stats}
        row |= {f"val_{k}": metrics.get(k, float("nan")) for k in VAL_METRICS}
        state.next_epoch()
        score = float(metrics.get("mAP_macro", float("nan")))
        save_epoch = partial(save, metrics=scalars(metrics))
        run.end_epoch(row, state, score=score, save=save_epoch, message=epoch_message(row))
        log_scalars(writer, row, state.epoch)
        barrier(rt.dist)
    metrics = run.finish(metrics)
    head_only = args.freeze_stages >= len(model.backbone.stages())
    run.export(partial(export_best, head_only=head_only), args.export)
    if writer is not None:
        writer.close()
    cleanup(rt.dist)
    return metrics


if __name__ == "__main__":
    run_script(main, get_args_parser())
