"""Process-level helpers both trainers share: the seeding rule, RNG state for checkpoints,
thread set-up, the progress lines printed for the person running training, and
running a trainer as a script (``python -m training.train``, under torchrun)."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from emojinet.errors import EmojiNetError

__all__ = [
    "configure_torch",
    "epoch_seed",
    "get_rng_state",
    "run_script",
    "say",
    "seed_everything",
    "set_rng_state",
]


def seed_everything(seed: int, rank: int = 0) -> None:
    """The seeding rule: Python, NumPy and torch start from ``seed + rank`` in every trainer."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (augmentation, GAN batches): the same on a resume."""
    return seed * 1_000_003 + epoch


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch CPU RNG states as plain containers and tensors (for
    ``torch.load(weights_only=True)``)."""
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


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def configure_torch(*, deterministic: bool = False, threads: int | None = None) -> None:
    """Deterministic algorithms on one thread (bit-identical reruns), or ``threads`` threads."""
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif threads:
        torch.set_num_threads(threads)


def say(message: str) -> None:
    """A progress line for the person running training, on stdout."""
    print(message, flush=True)  # noqa: T201


def run_script(
    main: Callable[[argparse.Namespace], object], parser: argparse.ArgumentParser
) -> None:
    """Log to stderr, run ``main`` on the command line; a domain error exits 2 with one line."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        main(parser.parse_args())
    except EmojiNetError as exc:
        sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        sys.exit(2)
