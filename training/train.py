"""Fine-tune an ImageNet backbone as a multi-label emoji classifier.

Four plain functions, as in torchvision's reference scripts: :func:`get_args_parser`,
:func:`train_one_epoch`, :func:`evaluate` and :func:`main`. Runs alone or under ``torchrun``.

Run folder (``--output-dir``)::

    config.json     the resolved configuration
    summary.csv     one row per epoch (loss, lr, throughput, validation metrics)
    checkpoint.pt   the latest full checkpoint (every epoch and every --checkpoint-every steps)
    best.pt         the checkpoint with the best validation mAP (macro)
    metrics.json    the final validation metrics
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from emojinet.checkpoint import export_release, load_checkpoint, save_checkpoint
from emojinet.errors import CheckpointError, EmojiNetError
from emojinet.model import EmojiNet, EmojiNetConfig, build_model
from emojinet.preprocess import PreprocessConfig, eval_preset, train_preset
from emojinet.vocab import Vocabulary
from training.datasets import EmojiImageDataset, EpochSampler, prescaled_index, targets_matrix
from training.distributed import DistInfo, barrier, cleanup, init_distributed
from training.metrics import evaluate_scores
from training.prepare import DatasetRecord, read_dataset
from training.summary import append_row, truncate_rows
from training.weights import WEIGHT_SCHEMES, emoji_loss_weights

__all__ = ["evaluate", "get_args_parser", "main", "train_one_epoch"]

log = logging.getLogger(__name__)

SUMMARY_FIELDS = (
    "epoch", "step", "train_loss", "lr", "images_per_s", "epoch_s",
    "val_mAP_macro", "val_mAP_micro", "val_top1", "val_top5",
)  # fmt: skip


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Fine-tune EmojiNet on a prepared data set", add_help=add_help
    )
    p.add_argument("--data", required=True, help="a folder written by `emojinet prepare`")
    p.add_argument(
        "--output-dir", default="runs/emojinet", help="run folder (checkpoints, CSV, config)"
    )
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", help="imagenet, none or a state-dict file")
    p.add_argument(
        "--input-size", type=int, default=None, help="crop size (default: the backbone's)"
    )
    p.add_argument(
        "--resize-size",
        type=int,
        default=None,
        help="resize before the crop (default: input size × 8/7)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the head")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument(
        "--warmup-epochs", type=float, default=0.5, help="linear warm-up, then cosine decay"
    )
    p.add_argument(
        "--lr-decay",
        type=float,
        default=0.5,
        help="layer-wise multiplier: stage i of S trains at lr × decay^(S-i)",
    )
    p.add_argument(
        "--freeze-stages", type=int, default=0, help="freeze the first N backbone stages"
    )
    p.add_argument(
        "--cache-features",
        action="store_true",
        help="run the frozen stages once and cache their outputs (no augmentation)",
    )
    p.add_argument("--loss-weights", default="none", choices=WEIGHT_SCHEMES)
    p.add_argument("--exp-k", type=float, default=10.0, help="k of the exp-smoothed weights")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--crop-scale", type=float, default=0.35, help="min area of the random crop")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--workers", type=int, default=2, help="data-loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms, one thread: bit-identical reruns and resumes",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps")
    p.add_argument(
        "--resume", default=None, help="a checkpoint, or 'auto' for OUTPUT_DIR/checkpoint.pt"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision (default: on for CUDA)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels_last memory format (default: on for CUDA)",
    )
    p.add_argument("--tensorboard", action="store_true", help="also log to OUTPUT_DIR/tb")
    p.add_argument(
        "--limit-train", type=int, default=None, help="use the first N training examples"
    )
    p.add_argument(
        "--limit-val", type=int, default=None, help="use the first N validation examples"
    )
    p.add_argument("--val-split", default="val", choices=["val", "test"])
    p.add_argument(
        "--export", default=None, metavar="PATH", help="export best.pt as a release at the end"
    )
    p.add_argument("--name", default=None, help="model name stored in the release")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    return p


# -- model pieces -----------------------------------------------------------------------------


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


def param_groups(model: EmojiNet, lr: float, lr_decay: float, freeze: int) -> list[dict[str, Any]]:
    """One group per trainable stage, stage i of S at ``lr × lr_decay^(S-i)``; the head at lr."""
    stages = model.backbone.stages()
    if not 0 <= freeze <= len(stages):
        raise ValueError(f"--freeze-stages must be between 0 and {len(stages)}, got {freeze}")
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


def set_train_mode(module: nn.Module, frozen: Sequence[nn.Module]) -> None:
    """Train mode, except frozen stages keep their BatchNorm statistics (eval mode)."""
    module.train()
    for stage in frozen:
        stage.eval()


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


# -- data -------------------------------------------------------------------------------------


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


def _split(records: list[DatasetRecord], split: str, limit: int | None) -> list[DatasetRecord]:
    out = [r for r in records if r.split == split]
    if not out:
        raise EmojiNetError(
            f"the data set has no {split!r} examples (re-run prepare with a {split} fraction)"
        )
    return out[:limit] if limit else out


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
    """Outputs of the first ``n_stages`` stages (pooled to (N, D) if that is all of them), fp16."""
    stages = model.backbone.stages()[:n_stages]
    for s in stages:
        s.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    out: list[torch.Tensor] = []
    for x, _, _ in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        x = x.to(device)
        for s in stages:
            x = s(x)
        if n_stages == len(model.backbone.stages()):
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        out.append(x.half().cpu())
    return torch.cat(out)


def _cached_features(
    cache_dir: Path, key: str, build: Callable[[], torch.Tensor], dist_info: DistInfo
) -> torch.Tensor:
    path = cache_dir / f"{key}.pt"
    if dist_info.is_main and not path.is_file():
        from emojinet.checkpoint import atomic_write

        feats = build()
        atomic_write(path, lambda tmp: torch.save(feats, tmp))
    barrier(dist_info)
    feats = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(feats, torch.Tensor)
    return feats


# -- the loop ---------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Progress that a checkpoint must restore for a resumed run to match an uninterrupted one."""

    epoch: int = 0
    position: int = 0  # samples of this epoch already seen by this rank
    step: int = 0
    loss_sum: float = 0.0
    n_seen: int = 0
    best: float = -1.0
    epoch_start: float = field(default_factory=time.time)


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data_loader: DataLoader[Any],
    device: torch.device,
    state: TrainState,
    *,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    on_step: Callable[[TrainState], None] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """One (possibly resumed) epoch; returns the mean loss and throughput."""
    t0 = time.time()
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


# -- main -------------------------------------------------------------------------------------


def _say(message: str) -> None:
    """A progress line for the person running training (rank 0 only), on stdout."""
    print(message, flush=True)  # noqa: T201


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(np_state[0]),
            torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [int(py_state[0]), list(py_state[1]), py_state[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_preprocess(args: argparse.Namespace, default: PreprocessConfig) -> PreprocessConfig:
    size = args.input_size or default.input_size
    resize = args.resize_size or (
        default.resize_size if args.input_size is None else round(size * 8 / 7)
    )
    if resize < size:
        raise ValueError(f"--resize-size ({resize}) must be at least --input-size ({size})")
    return replace(default, input_size=size, resize_size=resize)


def _cache_key(
    args: argparse.Namespace, split: str, records: Sequence[DatasetRecord], pre: PreprocessConfig
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([args.backbone, args.weights, args.freeze_stages, pre.to_dict()]).encode())
    for r in records:
        h.update(f"{r.id}\t{r.image}\n".encode())
    return f"{split}-{h.hexdigest()[:16]}"


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train; returns the final validation metrics (rank 0; an empty dict on other ranks)."""
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    dist_info = init_distributed(device)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
    amp = args.amp if args.amp is not None else device.type == "cuda"
    channels_last = args.channels_last if args.channels_last is not None else device.type == "cuda"
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = progress and dist_info.is_main
    out = Path(args.output_dir)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    _seed_everything(args.seed + dist_info.rank)

    records, vocab = read_dataset(args.data)
    train_records = _split(records, "train", args.limit_train)
    val_records = _split(records, args.val_split, args.limit_val)
    y_train = targets_matrix(train_records, vocab)
    doc_freq = [int(v) for v in y_train.sum(0).tolist()]
    counted = Vocabulary(vocab.emojis, tuple(doc_freq))

    resume_path: Path | None = None
    if args.resume:
        resume_path = out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        if args.resume == "auto" and not resume_path.is_file():
            resume_path = None
    ckpt: dict[str, Any] | None = None
    if resume_path is not None:
        model, ckpt = load_checkpoint(resume_path)
        if model.vocab != counted:
            model.vocab = counted
        preprocess = PreprocessConfig.from_dict(ckpt["extra"]["preprocess"])
        model.backbone.preprocess = preprocess
        if model.cfg.backbone != args.backbone:
            raise CheckpointError(
                f"{resume_path} holds a {model.cfg.backbone} model, not {args.backbone}"
            )
    else:
        cfg = EmojiNetConfig(
            backbone=args.backbone,
            head="linear",
            weights=args.weights,
            vocab=str(Path(args.data) / "vocab.json"),
            dropout=args.dropout,
            name=args.name or f"emojinet-{args.backbone}-{Path(args.data).name}",
        )
        model = build_model(cfg, counted)
        preprocess = resolve_preprocess(args, model.backbone.preprocess)
        model.backbone.preprocess = preprocess
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    groups = param_groups(model, args.lr, args.lr_decay, args.freeze_stages)
    stages = model.backbone.stages()
    frozen = stages[: args.freeze_stages]

    # Data: cached frozen-stage outputs, or images through the shared presets.
    root = Path(args.data)
    prescaled = prescaled_index(root, preprocess.resize_size)
    eval_tf = eval_preset(preprocess)
    val_images = EmojiImageDataset(
        root,
        val_records,
        vocab,
        eval_tf,
        prescaled=prescaled,
        seed=args.seed,
        draft_size=preprocess.resize_size,
    )
    trainable: nn.Module
    train_set: Dataset[Any]
    val_set: Dataset[Any]
    if args.cache_features:
        if args.freeze_stages < 1:
            raise ValueError(
                "--cache-features needs --freeze-stages >= 1 (the frozen stages are cached)"
            )
        train_plain = EmojiImageDataset(
            root,
            train_records,
            vocab,
            eval_tf,
            prescaled=prescaled,
            seed=args.seed,
            draft_size=preprocess.resize_size,
        )
        cache_dir = out / "cache"
        if dist_info.is_main:
            cache_dir.mkdir(parents=True, exist_ok=True)

        def build(ds: Dataset[Any], desc: str) -> Callable[[], torch.Tensor]:
            return lambda: compute_features(
                model,
                ds,
                args.freeze_stages,
                device,
                args.batch_size * 2,
                args.workers,
                progress,
                desc,
            )

        f_train = _cached_features(
            cache_dir,
            _cache_key(args, "train", train_records, preprocess),
            build(train_plain, "cache train"),
            dist_info,
        )
        f_val = _cached_features(
            cache_dir,
            _cache_key(args, args.val_split, val_records, preprocess),
            build(val_images, f"cache {args.val_split}"),
            dist_info,
        )
        train_set, val_set = (
            TensorItems(f_train, y_train),
            TensorItems(f_val, targets_matrix(val_records, vocab)),
        )
        trainable = Tail(model, args.freeze_stages)
        workers = 0
        frozen_in_trainable: Sequence[nn.Module] = []
    else:
        train_tf = (
            train_preset(preprocess, scale=(args.crop_scale, 1.0), hflip=args.hflip)
            if args.augment
            else eval_tf
        )
        train_set = EmojiImageDataset(
            root,
            train_records,
            vocab,
            train_tf,
            prescaled=prescaled,
            seed=args.seed,
            draft_size=preprocess.resize_size,
        )
        val_set = val_images
        trainable = model
        workers = args.workers
        frozen_in_trainable = frozen

    sampler = EpochSampler(
        len(train_set), seed=args.seed, rank=dist_info.rank, world_size=dist_info.world_size
    )
    loader_gen = torch.Generator().manual_seed(args.seed)  # keeps the global RNG untouched
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=workers,
        generator=loader_gen,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    val_loader = DataLoader(
        val_set, batch_size=args.batch_size * 2, shuffle=False, num_workers=workers
    )

    weights = torch.tensor(
        emoji_loss_weights(args.loss_weights, doc_freq, len(train_records), k=args.exp_k)
    )
    criterion = nn.BCEWithLogitsLoss(weight=weights.to(device))
    if args.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            groups, lr=args.lr, weight_decay=args.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            groups,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            nesterov=args.momentum > 0,
        )
    steps_per_epoch = -(-sampler.shard_size() // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    scheduler = make_scheduler(optimizer, round(args.warmup_epochs * steps_per_epoch), total_steps)
    scaler = torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None

    state = TrainState()
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        extra = ckpt["extra"]
        state = TrainState(
            epoch=int(ckpt["epoch"]),
            position=int(extra["position"]),
            step=int(ckpt["step"]),
            loss_sum=float(extra["loss_sum"]),
            n_seen=int(extra["n_seen"]),
            best=float(extra["best"]),
        )
        if scaler is not None and "scaler" in extra:
            scaler.load_state_dict(extra["scaler"])
        _set_rng_state(extra["rng"])
        log.info(
            "resumed from %s: epoch %d, %d samples in, step %d",
            resume_path,
            state.epoch,
            state.position,
            state.step,
        )
        if dist_info.is_main:
            _say(f"resumed from {resume_path} at epoch {state.epoch} step {state.step}")
            truncate_rows(out / "summary.csv", state.epoch, SUMMARY_FIELDS)

    ddp_model: nn.Module = trainable
    if dist_info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[device.index] if device.type == "cuda" else None
        )

    resolved = {
        "args": {
            k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool | None)
        },
        "model": model.cfg.to_dict(),
        "preprocess": preprocess.to_dict(),
        "vocab_size": len(vocab),
        "train_examples": len(train_records),
        "val_examples": len(val_records),
        "world_size": dist_info.world_size,
        "device": str(device),
        "amp": amp,
        "channels_last": channels_last,
        "loss_weights": weights.tolist(),
        "steps_per_epoch": steps_per_epoch,
    }
    writer = None
    if dist_info.is_main:
        (out / "config.json").write_text(
            json.dumps(resolved, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        if args.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise EmojiNetError(
                    "--tensorboard needs the tensorboard package (pip install tensorboard)"
                ) from exc
            writer = SummaryWriter(str(out / "tb"))

    def checkpoint(path: Path, metrics: dict[str, float] | None = None) -> None:
        extra: dict[str, Any] = {
            "position": state.position,
            "loss_sum": state.loss_sum,
            "n_seen": state.n_seen,
            "best": state.best,
            "rng": _rng_state(),
            "preprocess": preprocess.to_dict(),
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

    def on_step(s: TrainState) -> None:
        if args.checkpoint_every and s.step % args.checkpoint_every == 0 and dist_info.is_main:
            checkpoint(out / "checkpoint.pt")
            _say(f"checkpoint epoch {s.epoch} step {s.step} position {s.position}")

    metrics: dict[str, Any] = {}
    emojis = list(vocab.emojis)
    while state.epoch < args.epochs:
        sampler.set_epoch(state.epoch, start=state.position)
        if isinstance(train_set, EmojiImageDataset | TensorItems):
            train_set.set_epoch(state.epoch)
        set_train_mode(trainable, frozen_in_trainable)
        t0 = time.time()
        stats = train_one_epoch(
            ddp_model,
            criterion,
            optimizer,
            scheduler,
            train_loader,
            device,
            state,
            scaler=scaler,
            channels_last=channels_last,
            on_step=on_step,
            progress=progress,
        )
        epoch_s = time.time() - t0
        if dist_info.is_main:
            metrics, _, _ = evaluate(
                trainable,
                val_loader,
                device,
                emojis,
                channels_last=channels_last,
                progress=progress,
                desc=f"eval {args.val_split}",
            )
        barrier(dist_info)
        row = {
            "epoch": state.epoch,
            "step": state.step,
            **stats,
            "epoch_s": epoch_s,
            **{
                f"val_{k}": metrics.get(k, float("nan"))
                for k in ("mAP_macro", "mAP_micro", "top1", "top5")
            },
        }
        state.epoch += 1
        state.position, state.loss_sum, state.n_seen = 0, 0.0, 0
        if dist_info.is_main:
            log.info("epoch %d: %s", row["epoch"], row)
            _say(
                f"epoch {row['epoch']}: loss {row['train_loss']:.4f}  "
                f"{row['images_per_s']:.0f} img/s  "
                f"val mAP {row['val_mAP_macro']:.4f}  top-1 {row['val_top1']:.4f}",
            )
            append_row(out / "summary.csv", row, SUMMARY_FIELDS)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, float):
                        writer.add_scalar(k, v, state.epoch)
            scalar_metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, float | int)}
            improved = metrics["mAP_macro"] > state.best
            if improved:
                state.best = float(metrics["mAP_macro"])
            checkpoint(out / "checkpoint.pt", scalar_metrics)
            if improved:
                checkpoint(out / "best.pt", scalar_metrics)
        barrier(dist_info)

    if dist_info.is_main:
        if not metrics:  # resumed after the last epoch finished
            best_model, best_ckpt = load_checkpoint(out / "checkpoint.pt")
            metrics = dict(best_ckpt["metrics"])
        (out / "metrics.json").write_text(
            json.dumps(metrics, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        if args.export:
            best_model, best_ckpt = load_checkpoint(out / "best.pt")
            best_model.backbone.preprocess = PreprocessConfig.from_dict(
                best_ckpt["extra"]["preprocess"]
            )
            export_release(best_model, args.export, metrics=best_ckpt["metrics"])
            _say(f"exported {out / 'best.pt'} to {args.export}")
        if writer is not None:
            writer.close()
    cleanup(dist_info)
    return metrics if dist_info.is_main else {}


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        main(get_args_parser().parse_args())
    except EmojiNetError as exc:
        sys.stderr.write(f"emojinet train: error: {exc}\n")
        sys.exit(2)
