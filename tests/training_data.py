"""Helpers for the training tests (no tests here): real Fashion-MNIST images from tests/data."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
RTWEET = DATA / "rtweet_captions.jsonl"


def write_idx(path: Path, array: np.ndarray) -> None:  # type: ignore[type-arg]
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fashion_root(tmp: Path, n_train: int = 240, n_test: int = 60) -> Path:
    """IDX files like Debian's, holding the first real Fashion-MNIST images (from tests/data)."""
    d = np.load(DATA / "fashion_mnist_300.npz")
    root = tmp / "fashion-idx"
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", d["train_images"][:n_train])
    write_idx(root / "train-labels-idx1-ubyte.gz", d["train_labels"][:n_train])
    write_idx(root / "t10k-images-idx3-ubyte.gz", d["test_images"][:n_test])
    write_idx(root / "t10k-labels-idx1-ubyte.gz", d["test_labels"][:n_test])
    return root


def fashion_dataset(
    tmp: Path, n_train: int = 240, n_test: int = 60, val_fraction: float = 0.2
) -> Path:
    """A prepared data set folder of real Fashion-MNIST images."""
    from training.fashion_mnist import prepare_fashion_mnist
    from training.prepare import write_dataset

    out = tmp / "fashion"
    posts, vocab, splits, report = prepare_fashion_mnist(
        out, root=fashion_root(tmp, n_train, n_test)
    )
    write_dataset(
        out, posts, vocab, report, val_fraction=val_fraction, test_fraction=0.0, splits=splits
    )
    return out


def run_trainer(args: list[str], timeout: int = 600) -> None:
    """``python -m training.train ARGS`` from the repository root; fails the test on an error."""
    r = subprocess.run(
        [sys.executable, "-m", "training.train", *args],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stderr[-3000:]
