"""Command-line options that the classifier and GAN trainers share, each defined once."""

from __future__ import annotations

import argparse
import sys

__all__ = ["show_progress", "trainer_parser"]


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
    p.add_argument("--workers", type=int, default=2, help="data-loading processes")
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
