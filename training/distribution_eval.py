"""``emojinet evaluate --distribution``: sampled emoji distributions against the true ones.

For each held-out image both heads draw ``n`` emojis: the classifier through the sampling head
(its probabilities, normalised, temperature 1) and, when given, the EmojiGAN generator. We
compare them with the true labels over the set (JS divergence, total variation) and per image
(mode hit rate, distinct emojis in n draws), and draw the paper's figures:

* ``fig3_frequencies.png``: true vs sampled emoji frequencies (up to 30 emojis; Fig. 3);
* ``fig4_top10.png``: the top-10 sampled emojis of a few images (Fig. 4);
* ``fig2_tsne.png``: a t-SNE map of image features coloured by the mode emoji (Fig. 2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from emojinet.checkpoint import load
from emojinet.gan_head import GanHead
from emojinet.vocab import emoji_name
from training.distribution_metrics import (
    distinct_counts,
    distribution_metrics,
    modes,
    true_frequencies,
)
from training.evaluate import held_out
from training.features import backbone_features
from training.prepare import DatasetRecord
from training.run_dir import write_json

__all__ = ["evaluate_distribution", "write_distribution_plots"]

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@torch.no_grad()
def classifier_draws(probs: Floats, n: int, *, seed: int = 0) -> Ints:
    """(N, V) per-emoji probabilities → (N, n) draws from each row normalised (T = 1)."""
    p = torch.as_tensor(probs, dtype=torch.float64).clamp_min(0)
    p = p / p.sum(1, keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    out: Ints = torch.multinomial(p.float(), n, replacement=True, generator=gen).numpy()
    return out.astype(np.int64)


def evaluate_distribution(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    gan: str | Path | None = None,
    split: str = "test",
    n: int = 50,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    workers: int = 2,
    plots: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``distribution.json`` (and the plots) for the classifier and, if given, a GAN."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, meta = load(model_path)
    model.eval()
    chosen, vocab = held_out(model, data, split, limit)
    head = GanHead.load(gan, model_sha256=meta.digest, vocab=vocab) if gan else None
    held = backbone_features(
        model,
        meta.digest,
        data,
        chosen,
        vocab,
        out / "cache",
        split,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    feats = held.features.float()  # (N, D)
    with torch.no_grad():
        probs = torch.sigmoid(model.forward_head(feats)).double().numpy()  # (N, V)
    targets = held.targets.numpy().astype(np.float64)  # (N, V)

    draws: dict[str, Ints] = {"classifier": classifier_draws(probs, n, seed=seed)}
    if head is not None:
        draws["gan"] = np.concatenate(
            [
                head.draw(f.numpy(), n, seed=seed + i)
                for i, f in enumerate(torch.split(feats, batch_size))
            ]
        )
    emojis = list(vocab.emojis)
    truth = true_frequencies(targets).mean(0)
    metrics: dict[str, Any] = {
        "split": split,
        "model": str(model_path),
        "gan_release": str(gan) if gan else None,
        "n_images": len(chosen),
        "n_draws": n,
        "seed": seed,
    }
    top1 = probs.argmax(1)
    metrics["classifier"] = {
        **distribution_metrics(draws["classifier"], targets, tie_break=probs),
        "top1": float((targets[np.arange(len(top1)), top1] > 0).mean()),
    }
    if "gan" in draws:
        metrics["gan"] = distribution_metrics(draws["gan"], targets)
    metrics["true_frequencies"] = dict(zip(emojis, truth.round(6).tolist(), strict=True))
    sampled = {k: np.bincount(d.ravel(), minlength=len(emojis)) / d.size for k, d in draws.items()}
    metrics["sampled_frequencies"] = {
        k: dict(zip(emojis, v.round(6).tolist(), strict=True)) for k, v in sampled.items()
    }
    write_json(out / "distribution.json", metrics)
    if plots:
        write_distribution_plots(
            out, emojis, truth, sampled, draws, probs, feats.numpy(), targets, chosen, data, seed
        )
    return metrics


def _label(e: str) -> str:
    return emoji_name(e) or e


COLOURS = {"true": "0.35", "classifier": "tab:blue", "gan": "tab:orange"}


def save_figure(fig: Any, path: Path, *, dpi: int) -> Path:
    """Lay out, write and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_distribution_plots(
    out: Path,
    emojis: list[str],
    truth: Floats,
    sampled: dict[str, Floats],
    draws: dict[str, Ints],
    probs: Floats,
    features: npt.NDArray[np.float32],
    targets: Floats,
    records: list[DatasetRecord],
    data: str | Path,
    seed: int = 0,
) -> list[Path]:
    """The three figures; emojis are labelled by their CLDR names (matplotlib cannot draw
    colour emoji fonts)."""
    import matplotlib

    matplotlib.use("Agg")
    return [
        plot_frequencies(out / "fig3_frequencies.png", emojis, truth, sampled),
        plot_top10(out / "fig4_top10.png", emojis, draws, targets, records, data),
        plot_tsne(out / "fig2_tsne.png", features, draws, probs, emojis, seed),
    ]


def plot_frequencies(
    path: Path, emojis: list[str], truth: Floats, sampled: dict[str, Floats]
) -> Path:
    """Fig. 3: true vs sampled frequencies of the (up to) 30 most frequent true emojis."""
    import matplotlib.pyplot as plt

    order = np.argsort(-truth, kind="stable")[:30]
    series = {"true": truth, **sampled}
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(order) * len(series) + 2), 4.2))
    for j, (name, freq) in enumerate(series.items()):
        xs = np.arange(len(order)) + (j - (len(series) - 1) / 2) * width
        ax.bar(xs, freq[order], width, label=name, color=COLOURS.get(name))
    ax.set_xticks(np.arange(len(order)), [_label(emojis[i]) for i in order], rotation=35)
    ax.tick_params(axis="x", labelsize=8)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")
    ax.set_ylabel("frequency")
    ax.set_title("true vs sampled emoji frequencies (held-out images)")
    ax.legend()
    return save_figure(fig, path, dpi=90)


def plot_top10(
    path: Path,
    emojis: list[str],
    draws: dict[str, Ints],
    targets: Floats,
    records: list[DatasetRecord],
    data: str | Path,
) -> Path:
    """Fig. 4: the top-10 sampled emojis of four images: the first two (of different true
    emojis) and the two whose draws spread over the most emojis (the last head's draws)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    heads = list(draws)
    picks: list[int] = []
    for i in range(len(records)):
        if not picks or targets[i].argmax() != targets[picks[0]].argmax():
            picks.append(i)
        if len(picks) == 2:
            break
    spread = distinct_counts(draws[heads[-1]])
    picks += [int(i) for i in np.argsort(-spread, kind="stable") if i not in picks][:2]
    fig, axes = plt.subplots(
        len(picks), 1 + len(heads), figsize=(3.2 * (1 + len(heads)), 2.3 * len(picks)),
        squeeze=False, gridspec_kw={"width_ratios": [0.6] + [1.0] * len(heads)},
    )  # fmt: skip
    for row, i in enumerate(picks):
        ax = axes[row][0]
        with Image.open(Path(data) / records[i].image) as img:
            ax.imshow(np.asarray(img.convert("L")), cmap="gray")
        ax.set_axis_off()
        ax.set_title("true: " + ", ".join(_label(e) for e in records[i].emojis), fontsize=8)
        for col, name in enumerate(heads, start=1):
            counts = np.bincount(draws[name][i], minlength=len(emojis))
            top = [k for k in np.argsort(-counts, kind="stable")[:10] if counts[k] > 0]
            ax = axes[row][col]
            bar_colours = [
                "tab:green" if targets[i, k] > 0 else COLOURS[name] for k in top
            ]  # fmt: skip
            ax.barh(range(len(top)), counts[top] / counts.sum(), color=bar_colours)
            ax.set_yticks(range(len(top)), [_label(emojis[k]) for k in top], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.tick_params(axis="x", labelsize=7)
            if row == 0:
                ax.set_title(f"{name}: top-10 of {draws[name].shape[1]} draws", fontsize=9)
    fig.suptitle(
        "sampled emojis per image (green: a true emoji); rows 3-4: the most spread draws",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=80)


def plot_tsne(
    path: Path,
    features: npt.NDArray[np.float32],
    draws: dict[str, Ints],
    probs: Floats,
    emojis: list[str],
    seed: int,
) -> Path:
    """Fig. 2: t-SNE of (up to 1,000) image features, coloured by the mode emoji."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    head = "gan" if "gan" in draws else "classifier"
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(features), size=min(1000, len(features)), replace=False))
    x = np.asarray(features[idx], np.float64)
    x = PCA(n_components=min(50, x.shape[0], x.shape[1]), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (len(idx) - 1) / 3)))
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    tie = probs if head == "classifier" else None
    mode = modes(draws[head][idx], len(emojis), None if tie is None else tie[idx])
    fig, ax = plt.subplots(figsize=(7, 5.5))
    cmap = plt.get_cmap("tab10" if len(emojis) <= 10 else "tab20")
    for k in np.unique(mode):
        sel = mode == k
        ax.scatter(
            xy[sel, 0], xy[sel, 1], s=6, color=cmap(int(k) % cmap.N), label=_label(emojis[k])
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of {len(idx)} images' backbone features, coloured by the {head}'s mode")
    ax.legend(fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(fig, path, dpi=80)
