"""The classifier and GAN trainers' command-line options, each defined once.

No torch here: ``emojinet --help`` builds these parsers without importing the trainers."""

from __future__ import annotations

import argparse
import sys

from emojinet.cli_args import int_range
from training.weights import WEIGHT_SCHEMES

__all__ = ["gan_args_parser", "show_progress", "train_args_parser", "trainer_parser"]


def trainer_parser(
    prog: str, description: str, *, output_dir: str, add_help: bool = True
) -> argparse.ArgumentParser:
    """A trainer's parser with the shared options: data, run folder, seeding, resume, export
    and progress."""
    p = argparse.ArgumentParser(prog=prog, description=description, add_help=add_help)
    p.add_argument("--data", required=True, help="a folder written by `emojinet prepare`")
    p.add_argument("--output-dir", default=output_dir, help="run folder (checkpoints, CSV, config)")
    p.add_argument("--val-split", default="val", choices=["val", "test"])
    p.add_argument(
        "--limit-train", type=int, default=None, help="use the first N training examples"
    )
    p.add_argument("--exp-k", type=float, default=10.0, help="k of the exp-smoothed weights")
    p.add_argument("--workers", type=int_range(0, 256), default=2, help="data-loading processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--resume", default=None, help="a checkpoint, or 'auto' for OUTPUT_DIR/checkpoint.pt"
    )
    p.add_argument(
        "--export", default=None, metavar="PATH", help="export best.pt as a release at the end"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    return p


def show_progress(args: argparse.Namespace) -> bool:
    """``--progress`` / ``--no-progress``, else whether stderr is a terminal."""
    return bool(args.progress if args.progress is not None else sys.stderr.isatty())


def train_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """``emojinet train``'s options (:mod:`training.train`)."""
    about = "Fine-tune EmojiNet on a prepared data set"
    p = trainer_parser("emojinet train", about, output_dir="runs/emojinet", add_help=add_help)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", help="imagenet, none or a state-dict file")
    p.add_argument(
        "--head",
        choices=["linear", "residual"],
        default="linear",
        help="residual: the zero-shot head + a trained correction (starts equal to it)",
    )
    p.add_argument(
        "--vocab",
        choices=["data", "all"],
        default="data",
        help="all: answer over every emoji the built-in model knows, not only the data's",
    )
    p.add_argument(
        "--input-size", type=int, default=None, help="crop size (default: the backbone's)"
    )
    p.add_argument(
        "--resize-size",
        type=int,
        default=None,
        help="resize before the crop (default: input size × 8/7)",
    )
    p.add_argument("--epochs", type=int_range(0, 10**6), default=10)
    p.add_argument("--batch-size", type=int_range(1, 1 << 16), default=64, help="per process")
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
    p.add_argument(
        "--distill-weight",
        type=float,
        default=0.0,
        help="mix the zero-shot teacher's soft labels into the targets (needs --cache-features)",
    )
    p.add_argument(
        "--view",
        choices=["center", "full"],
        default="center",
        help="center: resize and crop the middle; full: the whole picture squeezed to a square",
    )
    p.add_argument("--loss-weights", default="none", choices=WEIGHT_SCHEMES)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--crop-scale", type=float, default=0.35, help="min area of the random crop")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms, one thread: bit-identical reruns and resumes",
    )
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps")
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
        "--limit-val", type=int, default=None, help="use the first N validation examples"
    )
    p.add_argument("--name", default=None, help="model name stored in the release")
    return p


def gan_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """``emojinet train-gan``'s options (:mod:`training.gan`)."""
    about = "Train the EmojiGAN head (conditional WGAN-GP) on a classifier's features"
    p = trainer_parser("emojinet train-gan", about, output_dir="runs/emojigan", add_help=add_help)
    p.add_argument(
        "--model", required=True, help="the classifier (release or checkpoint) whose features"
    )
    p.add_argument(
        "--epochs", type=int_range(0, 10**6), default=10, help="passes of the critic over the data"
    )
    p.add_argument("--batch-size", type=int_range(1, 1 << 16), default=64)
    p.add_argument(
        "--n-critic", type=int_range(1, 1000), default=5, help="critic steps per generator step"
    )
    p.add_argument("--gp-lambda", type=float, default=10.0, help="gradient penalty weight λ")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (the paper's)")
    p.add_argument("--beta1", type=float, default=0.1)
    p.add_argument("--beta2", type=float, default=0.9)
    p.add_argument(
        "--sample-weights",
        default="exp",
        choices=WEIGHT_SCHEMES,
        help="per-sample weights from the real emoji's frequency (EmojiGAN eq. 2: exp)",
    )
    p.add_argument("--noise-dim", type=int, default=64)
    p.add_argument("--cond-dim", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--val-limit", type=int, default=1000, help="validation images per epoch")
    p.add_argument("--val-draws", type=int, default=50, help="draws per validation image")
    p.add_argument("--feature-batch-size", type=int_range(1, 1 << 16), default=256)
    return p
