"""The run folder both trainers share (summary CSV, checkpoint and best, resume, metrics),
the one seeding rule and the one split selection."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from training.datasets import select_split
from training.errors import DataError, ResumeError
from training.prepare import DatasetRecord
from training.run_dir import Progress, RunDir
from training.utils import get_rng_state, seed_everything, set_rng_state

FIELDS = ("epoch", "step", "loss", "score")


def _epoch(run: RunDir, progress: Progress, score: float) -> list[float]:
    """One epoch's bookkeeping; returns the best score each save saw."""
    seen: list[float] = []

    def save(path: Path) -> None:
        seen.append(progress.best)
        torch.save({"epoch": progress.epoch, "metrics": {"score": score}}, path)

    row = {"epoch": progress.epoch, "step": progress.step, "loss": 0.5, "score": score}
    progress.epoch += 1
    run.end_epoch(row, progress, score=score, save=save, message=f"epoch {row['epoch']}")
    return seen


def _rows(run: RunDir) -> list[dict[str, str]]:
    with run.summary.open(newline="") as f:
        return list(csv.DictReader(f))


def test_epochs_append_rows_and_best_follows_the_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, progress = RunDir(tmp_path / "run", FIELDS), Progress()
    assert _epoch(run, progress, 0.3) == [0.3]  # the checkpoint holds the new best
    best_after_first = run.best.read_bytes()
    assert best_after_first == run.checkpoint.read_bytes()
    assert _epoch(run, progress, 0.1) == [0.3]  # worse: best.pt stays the first epoch's
    assert run.best.read_bytes() == best_after_first != run.checkpoint.read_bytes()
    _epoch(run, progress, 0.7)
    assert run.best.read_bytes() == run.checkpoint.read_bytes() and progress.best == 0.7
    assert [(r["epoch"], r["score"]) for r in _rows(run)] == [
        ("0", "0.3"),
        ("1", "0.1"),
        ("2", "0.7"),
    ]
    assert capsys.readouterr().out == "epoch 0\nepoch 1\nepoch 2\n"
    assert not list(run.path.glob(".*.tmp"))


def test_resume_drops_rows_written_after_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, progress = RunDir(tmp_path, FIELDS), Progress()
    for score in (0.1, 0.2, 0.3):
        _epoch(run, progress, score)
    assert run.resume_path(None) is None
    assert run.resume_path("auto") == run.checkpoint
    with pytest.raises(ResumeError, match="does not exist"):
        run.resume_path(tmp_path / "nope.pt")
    capsys.readouterr()
    run.resumed(run.checkpoint, Progress(epoch=2, step=7))
    assert [r["epoch"] for r in _rows(run)] == ["0", "1"]
    assert capsys.readouterr().out == f"resumed from {run.checkpoint} at epoch 2 (step 7)\n"
    # Resumed after the last epoch: nothing new, the metrics come from the checkpoint.
    assert run.finish({}) == {"score": 0.3}
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"score": 0.3}


def test_other_ranks_write_and_print_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, progress = RunDir(tmp_path / "rank1", FIELDS, is_main=False), Progress()
    _epoch(run, progress, 0.5)
    run.write_config({"a": 1})
    assert run.finish({"score": 0.5}) == {}
    run.say("hello")
    assert not run.path.exists() and capsys.readouterr().out == ""


def test_one_seeding_rule_and_rng_state_round_trip() -> None:
    seed_everything(3, rank=1)
    a = (random.random(), float(np.random.rand()), torch.rand(2))
    random.seed(4)
    np.random.seed(4)
    torch.manual_seed(4)
    b = (random.random(), float(np.random.rand()), torch.rand(2))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])
    state = get_rng_state()
    first = (random.random(), float(np.random.rand()), torch.rand(3))
    set_rng_state(state)
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_one_way_to_select_a_split() -> None:
    records = [
        DatasetRecord(str(i), f"{i}.png", ["🐱"], "train" if i % 3 else "val") for i in range(9)
    ]
    assert [r.id for r in select_split(records, "val")] == ["0", "3", "6"]
    assert [r.id for r in select_split(records, "train", 2)] == ["1", "2"]
    with pytest.raises(DataError, match="no 'test' examples"):
        select_split(records, "test")
