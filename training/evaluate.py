"""``emojinet evaluate``: score a trained model on a data set split (:func:`evaluate_model`):
``metrics.json``, PNG plots and, optionally, a release artifact; and the held-out records
a model may be evaluated on (:func:`held_out`)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader

from emojinet.checkpoint import export_release, load
from emojinet.model import EmojiNet
from emojinet.vocab import Vocabulary
from training.datasets import check_vocabulary, image_dataset, select_split
from training.engine import evaluate
from training.metrics import precision_recall_curve, scalars
from training.prepare import DatasetRecord, read_dataset
from training.run_dir import write_json

__all__ = ["evaluate_model", "held_out", "write_plots"]

log = logging.getLogger(__name__)


def write_plots(
    out: Path,
    metrics: dict[str, Any],
    probs: npt.NDArray[np.float64],
    targets: npt.NDArray[np.float64],
) -> list[Path]:
    """Write ``per_emoji_ap.png`` (bars) and ``precision_recall.png`` (micro PR curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emojinet.vocab import emoji_name

    paths: list[Path] = []
    ap = {e: v for e, v in metrics["per_emoji_AP"].items() if v is not None}
    items = sorted(ap.items(), key=lambda kv: kv[1], reverse=True)[:50]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(items) + 1.2))
    labels = [f"{emoji_name(e)} ({metrics['per_emoji_support'][e]})" for e, _ in items]
    ax.barh(range(len(items)), [v for _, v in items], color="tab:blue")
    ax.set_yticks(range(len(items)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    ax.set_title(f"per-emoji AP (mAP macro {metrics['mAP_macro']:.3f}; support in brackets)")
    fig.tight_layout()
    paths.append(out / "per_emoji_ap.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    precision, recall = precision_recall_curve(probs, targets)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(recall, precision, color="tab:orange")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"precision–recall, all emojis (mAP micro {metrics['mAP_micro']:.3f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out / "precision_recall.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def held_out(
    model: EmojiNet, data: str | Path, split: str, limit: int | None
) -> tuple[list[DatasetRecord], Vocabulary]:
    """The ``split`` records of a prepared data set, checked against the model's vocabulary
    (which is returned: scores and targets are over every emoji the model answers with)."""
    records, vocab = read_dataset(data)
    check_vocabulary(model.vocab, vocab)
    return select_split(records, split, limit), model.vocab


def evaluate_model(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    batch_size: int = 128,
    workers: int = 2,
    limit: int | None = None,
    export: str | Path | None = None,
    plots: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``split`` of a prepared data set with the real model and the shared eval preset."""
    model, _ = load(model_path)
    model.eval()
    chosen, vocab = held_out(model, data, split, limit)
    ds = image_dataset(data, chosen, vocab, model.preprocess)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers)
    metrics, probs, targets = evaluate(
        model,
        loader,
        torch.device("cpu"),
        list(vocab.emojis),
        progress=progress,
        desc=f"evaluate {split}",
    )
    metrics = {"split": split, "model": str(model_path), **metrics}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    if plots:
        write_plots(out, metrics, probs, targets)
    if export:
        numbers = scalars(metrics, prefix=f"{split}_")
        finite = {k: v for k, v in numbers.items() if math.isfinite(v)}  # NaN: no positives
        export_release(model, export, metrics=finite)
    return metrics
