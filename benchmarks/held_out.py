"""A fine-tuned model against the zero-shot model on the held-out split of its data set.

Both models see the same held-out pictures (``--split test``: the author-labelled pictures no
training run saw, ``emojinet prepare --holdout``) and are scored over the same vocabulary
(the fine-tuned model's, which holds the data set's emojis): the zero-shot model is the
built-in head over that vocabulary, on the same pretrained backbone. Prints mAP (macro,
micro), top-1/top-5 and the emojis each model ranks best and worst; writes
``runs/bench/held_out.json`` (``--out benchmarks/results/held_out.json`` updates the committed
one).

    python benchmarks/held_out.py --model emoji500 --data data/emoji500
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from emojinet.checkpoint import load  # noqa: E402
from emojinet.model import EmojiNet, build_model  # noqa: E402
from training.datasets import check_vocabulary, image_dataset, select_split  # noqa: E402
from training.engine import evaluate  # noqa: E402
from training.metrics import evaluate_scores  # noqa: E402
from training.prepare import read_dataset  # noqa: E402

COLUMNS = ("mAP_macro", "mAP_micro", "top1", "top5")


def zero_shot_like(model: EmojiNet) -> EmojiNet:
    """The built-in zero-shot head over ``model``'s vocabulary, backbone and view."""
    cfg = replace(model.cfg, head="zeroshot", name="zero-shot (same vocabulary)")
    return build_model(cfg, model.vocab).eval()


def score(model: EmojiNet, data: Path, split: str, workers: int) -> dict[str, dict[str, Any]]:
    """Metrics over the whole split and per source (``clipart``, ``fashion-mnist`` …)."""
    records, data_vocab = read_dataset(data)
    check_vocabulary(model.vocab, data_vocab)
    chosen, vocab = select_split(records, split, None), model.vocab
    loader = DataLoader(
        image_dataset(data, chosen, vocab, model.preprocess), batch_size=64, num_workers=workers
    )
    emojis = list(vocab.emojis)
    metrics, probs, targets = evaluate(model, loader, torch.device("cpu"), emojis)
    out = {"all": dict(metrics)}
    for source in sorted({r.source for r in chosen}):
        idx = [i for i, r in enumerate(chosen) if r.source == source]
        out[source or "other"] = dict(evaluate_scores(probs[idx], targets[idx], emojis))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the fine-tuned release (or its name)")
    parser.add_argument("--data", type=Path, required=True, help="its prepared data set")
    parser.add_argument("--split", default="test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/bench/held_out.json"),
        help="JSON output (default: %(default)s); --out benchmarks/results/held_out.json "
        "updates the committed figures",
    )
    args = parser.parse_args()

    tuned, _ = load(args.model)
    models = {tuned.cfg.name: tuned.eval(), "zero-shot": zero_shot_like(tuned)}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, model in models.items():
        results[name] = score(model, args.data, args.split, args.workers)
    print(f"held-out split {args.split!r} of {args.data}, over {len(tuned.vocab)} emojis")
    print(f"{'pictures':<24}{'model':<14}{'n':>6}" + "".join(f"{c:>11}" for c in COLUMNS))
    for group in results[tuned.cfg.name]:
        for name in models:
            m = results[name][group]
            row = "".join(f"{float(m.get(c, float('nan'))):>11.3f}" for c in COLUMNS)
            print(f"{group:<24}{name:<14}{m.get('n_images', 0):>6}{row}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "data": str(args.data),
        "split": args.split,
        "models": {
            name: {g: {k: v for k, v in m.items() if not isinstance(v, dict)} for g, m in r.items()}
            for name, r in results.items()
        },
        "per_emoji_AP": {name: r["all"].get("per_emoji_AP", {}) for name, r in results.items()},
    }
    args.out.write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
