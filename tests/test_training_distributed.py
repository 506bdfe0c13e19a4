"""The same training entry point under torchrun: 2 gloo processes on the CPU, rank 0 writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_data import fashion_dataset

from emojinet.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_gloo_processes_train_a_few_steps(tmp_path: Path) -> None:
    data = fashion_dataset(tmp_path, n_train=80, n_test=10, val_fraction=0.2)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.train", "--data", str(data), "--output-dir", str(out),
        "--backbone", "resnet18", "--weights", "none", "--input-size", "16", "--resize-size", "16",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1", "--no-progress",
        "--checkpoint-every", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-4000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    n_train = config["train_examples"]
    # Each rank sees half of the (padded) epoch: ceil(ceil(n/2) / 8) steps.
    per_rank = -(-n_train // 2)
    steps = -(-per_rank // 8)
    assert config["steps_per_epoch"] == steps
    # Only rank 0 logs and writes: one epoch line, one CSV row, step checkpoints printed once.
    assert r.stdout.count("epoch 0:") == 1
    assert r.stdout.count("checkpoint epoch 0 step 2 ") == 1
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and int(rows[0]["step"]) == steps
    _, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == steps and ckpt["epoch"] == 1
    assert not any(k.startswith("module.") for k in ckpt["model"])  # unwrapped, loads without DDP
