"""Suggestion quality of a model on labelled image sets: a table, JSON and a reliability plot.

Runs the real serving path (``Predictor``: decode, preprocess, the ONNX Runtime or torch
backend, deny-list, top-k) of the built-in model, a release artifact or a training checkpoint
over labelled sets (a JSON list of ``{file, accept: [emojis], category}``; see
``training/suggestions.py`` for the scoring rule), then prints top-1/top-5 per set and per
category, the worst misses, and how well scores match accept rates (reliability).

    python benchmarks/quality.py                       # built-in model, every development set
    python benchmarks/quality.py --model artifacts/x/name --set ../shared/eval-dev/photos.json

Default sets: ``../shared/eval-dev/photos.json`` (41 real photographs), the openclipart set
(``benchmarks/sets/openclipart.json``), and Fashion-MNIST test photos and the scikit-image /
scikit-learn photos (``scripts/build_eval_sets.py`` writes them under ``data/eval``; run first
by ``make quality``). Sets whose file is missing are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from emojinet.errors import EmojiNetError  # noqa: E402
from emojinet.predictor import Predictor  # noqa: E402
from training.suggestions import (  # noqa: E402
    LabelledImage,
    SetReport,
    accepted_pairs,
    load_set,
    reliability,
    score_set,
)

DEFAULT_SETS = {
    "photos": ROOT.parent / "shared" / "eval-dev" / "photos.json",
    "clipart": ROOT / "benchmarks" / "sets" / "openclipart.json",
    "fashion": ROOT / "data" / "eval" / "fashion" / "set.json",
    "samples": ROOT / "data" / "eval" / "samples" / "set.json",
}
K = 5


def run_set(
    predictor: Predictor, images: list[LabelledImage], batch: int = 16
) -> tuple[list[list[str]], list[list[float]]]:
    """Top-K emojis and scores per image through the predictor, in batches."""
    ranked: list[list[str]] = []
    scores: list[list[float]] = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        arrays = []
        for im in chunk:
            try:
                arrays.append(predictor.preprocess(im.path.read_bytes()))
            except (OSError, EmojiNetError) as exc:
                raise SystemExit(f"{im.path}: {exc}") from exc
        for row in predictor.run_batch(np.stack(arrays)).probs:
            top = predictor.top_k(row, K)
            ranked.append([s.emoji for s in top])
            scores.append([s.score for s in top])
    return ranked, scores


def print_table(reports: dict[str, SetReport], rel: dict[str, float]) -> None:
    print(
        f"\n{'set':<10} {'n':>5} {'top-1':>7} {'top-5':>7}   ECE of top-5   "
        "most repeated wrong top-5 emoji"
    )
    for name, r in reports.items():
        emoji, share = r.repeated_wrong
        print(
            f"{name:<10} {r.n:>5} {r.top1:>7.3f} {r.top5:>7.3f}   {rel[name]:>12.3f}   "
            f"{emoji} on {share:.0%} of the images"
        )
    for name, r in reports.items():
        print(f"\n{name}: per category")
        for cat, c in r.per_category.items():
            print(f"  {cat[:44]:<44} {int(c['n']):>4} {c['top1']:>7.3f} {c['top5']:>7.3f}")
        print(f"{name}: worst misses (most confident top-1 first)")
        for m in r.worst_misses[:5]:
            print(
                f"  {Path(m.file).name[:30]:<30} {' '.join(m.suggested)}  ({m.top_score:.2f})"
                f"  wanted {' '.join(m.accept[:4])}"
            )


def plot_reliability(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
    for name, c in curves.items():
        keep = [i for i, n in enumerate(c["count"]) if n >= 5]
        ax.plot(
            [c["mean_score"][i] for i in keep],
            [c["accept_rate"][i] for i in keep],
            marker="o",
            label=name,
        )
    ax.set_xlabel("score of a top-5 suggestion")
    ax.set_ylabel("share of those a person accepts")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="release artifact or checkpoint; default built-in"
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument(
        "--set",
        action="append",
        type=Path,
        dest="sets",
        help="a labelled set JSON (repeatable); default: every development set",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "quality")
    args = parser.parse_args()

    sets = {p.stem: p for p in args.sets} if args.sets else DEFAULT_SETS
    predictor = Predictor.load(args.model, backend=args.backend)
    reports: dict[str, SetReport] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    ece: dict[str, float] = {}
    t0 = time.perf_counter()
    for name, path in sets.items():
        if not path.is_file():
            print(f"skipping {name}: {path} is missing (make quality builds the sets)")
            continue
        images = load_set(path)
        ranked, scores = run_set(predictor, images)
        reports[name] = score_set(images, ranked, [s[0] for s in scores])
        r = reliability(*accepted_pairs(images, ranked, scores, K))
        curves[name], ece[name] = r.to_dict(), r.ece
    print(
        f"model {predictor.info.name} ({predictor.info.backbone}, {predictor.info.vocab_size} "
        f"emojis, {predictor.info.backend}); {time.perf_counter() - t0:.0f} s"
    )
    print_table(reports, ece)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "model": predictor.info.to_dict(),
        "sets": {n: r.to_dict() for n, r in reports.items()},
        "reliability": curves,
    }
    (args.out / "quality.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    plot_reliability(curves, args.out / "reliability.png")
    print(f"\nwrote {args.out / 'quality.json'} and {args.out / 'reliability.png'}")


if __name__ == "__main__":
    main()
