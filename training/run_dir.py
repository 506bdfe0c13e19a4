"""The run folder (``--output-dir``) that the classifier and GAN trainers write, as one object::

    config.json     the resolved configuration
    summary.csv     one row per epoch (the trainer names the columns)
    checkpoint.pt   the latest full checkpoint (written atomically)
    best.pt         a copy of the checkpoint with the best validation score
    metrics.json    the final validation metrics
    cache/          cached features

Also owns :class:`Progress` (epochs, steps, best score: what every checkpoint restores), what
``--resume`` means, and :func:`write_json`, the one writer of training's JSON files (strict JSON:
a metric that does not exist, NaN or infinite, is ``null``). Under torchrun only rank 0 writes;
the other ranks' calls do nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emojinet.artifacts import atomic_write
from training.errors import ResumeError
from training.utils import say

__all__ = ["Progress", "RunDir", "json_safe", "write_json"]

log = logging.getLogger(__name__)


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float (NaN: a metric that does not exist) as None."""
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as strict JSON (non-finite floats as null; ``NaN`` can never be written)."""
    text = json.dumps(json_safe(data), ensure_ascii=False, indent=1, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


@dataclass
class Progress:
    """How far a run is: epochs finished, optimiser steps, the best validation score so far."""

    epoch: int = 0
    step: int = 0
    best: float = -1.0


class RunDir:
    """One training run's folder.

    Args:
        path: the folder (created by the main process).
        fields: the summary CSV's columns, in order.
        is_main: False on torchrun ranks other than 0: nothing is written or printed.
        quiet: write files but print no progress lines.
    """

    def __init__(
        self, path: str | Path, fields: Sequence[str], *, is_main: bool = True, quiet: bool = False
    ) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / "checkpoint.pt"
        self.best = self.path / "best.pt"
        self.summary = self.path / "summary.csv"
        self.cache = self.path / "cache"
        self.fields = tuple(fields)
        self.is_main = is_main
        self.quiet = quiet or not is_main
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        """A progress line for the person running training (main process, unless quiet)."""
        if not self.quiet:
            say(message)

    def resume_path(self, spec: str | Path | None) -> Path | None:
        """``--resume``: None; ``"auto"``, this run's checkpoint if there is one; or a file."""
        if spec is None or str(spec) == "":
            return None
        if str(spec) == "auto":
            return self.checkpoint if self.checkpoint.is_file() else None
        path = Path(spec)
        if not path.is_file():
            raise ResumeError(f"cannot resume: checkpoint {path} does not exist")
        return path

    def resumed(self, path: Path, progress: Progress) -> None:
        """Drop summary rows written after the checkpoint (before a crash); say so."""
        log.info("resumed from %s: epoch %d, step %d", path, progress.epoch, progress.step)
        if not self.is_main:
            return
        self._truncate_summary(progress.epoch)
        self.say(f"resumed from {path} at epoch {progress.epoch} (step {progress.step})")

    def write_config(self, config: dict[str, Any]) -> None:
        """``config.json``: the resolved configuration of the run."""
        self._write_json(self.path / "config.json", config)

    def end_epoch(
        self,
        row: dict[str, Any],
        progress: Progress,
        *,
        score: float,
        save: Callable[[Path], None],
        message: str,
    ) -> None:
        """Log and append ``row``, then ``save(checkpoint.pt)``; copy it to ``best.pt`` when
        ``score`` beats ``progress.best`` (updated before saving, so the checkpoint holds it)."""
        if not self.is_main:
            return
        log.info("epoch %d: %s", row["epoch"], row)
        self.say(message)
        self._append_summary(row)
        improved = score > progress.best
        if improved:
            progress.best = score
        save(self.checkpoint)
        if improved:
            atomic_write(self.best, self._copy_checkpoint)

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Write ``metrics.json`` and return it; a run resumed after its last epoch has no new
        metrics and takes the checkpoint's."""
        if not self.is_main:
            return {}
        if not metrics and self.checkpoint.is_file():
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            metrics = dict(ckpt["metrics"])
        self._write_json(self.path / "metrics.json", metrics)
        return metrics

    def export(self, write: Callable[[Path, str], object], dest: str | None) -> None:
        """``--export DEST``: ``write(best.pt, DEST)`` at the end of the run."""
        if dest and self.is_main:
            write(self.best, dest)
            self.say(f"exported {self.best} to {dest}")

    def _copy_checkpoint(self, dest: Path) -> None:
        shutil.copyfile(self.checkpoint, dest)

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        if self.is_main:
            write_json(path, data)

    def _append_summary(self, row: dict[str, Any]) -> None:
        """One epoch's row (floats to 6 significant digits, None empty); the header first if new."""
        new = not self.summary.is_file()
        with self.summary.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.fields), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})

    def _truncate_summary(self, epochs_done: int) -> None:
        if not self.summary.is_file():
            return
        with self.summary.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < epochs_done]
        with self.summary.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.fields))
            writer.writeheader()
            writer.writerows(rows)
