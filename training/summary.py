"""The per-epoch summary CSV that training runs append to (one row per epoch)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["append_row", "truncate_rows"]


def append_row(path: Path, row: dict[str, Any], fields: Sequence[str]) -> None:
    """Append one epoch's row (floats to 6 significant digits); write the header first if new."""
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def truncate_rows(path: Path, epochs_done: int, fields: Sequence[str]) -> None:
    """Drop rows of epochs after the checkpoint a run resumes from (written before a crash)."""
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < epochs_done]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
