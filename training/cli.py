"""``emojinet prepare | prescale | train | train-gan | evaluate | bench``.

Registered by ``emojinet.cli``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

# Spinning OpenMP threads slow training down several-fold on a shared CPU: let them yield.
# Takes effect only if torch is not loaded yet (this module imports it lazily).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _out(*parts: object, file: Any = None) -> None:
    """The command line's output."""
    print(*parts, file=file or sys.stdout)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from emojinet.vocab import Vocabulary
    from training.posts import folder_posts, read_posts
    from training.prepare import FilterConfig, PrepareReport, filter_posts, write_dataset

    sources = [s for s in (args.manifest, args.folder, args.fashion_mnist) if s]
    if len(sources) != 1:
        _out(
            "emojinet prepare: give exactly one of --manifest, --folder, --fashion-mnist",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    splits: dict[str, str] | None = None
    if args.fashion_mnist:
        from training.fashion_mnist import prepare_fashion_mnist

        root = args.fashion_mnist_root
        posts, vocab, splits, report = prepare_fashion_mnist(out, root=root, limit=args.limit)
        val_fraction, test_fraction = args.val_fraction, 0.0
    else:
        cfg = FilterConfig(
            max_hashtags=args.max_hashtags or None,
            require_emoji_in_caption=args.require_emoji_in_caption,
            cap_per_emoji=args.cap_per_emoji or None,
            fold_skin_tone=args.fold_skin_tone,
            top_n=args.top_n,
            min_count=args.min_count,
        )
        raw = read_posts(args.manifest) if args.manifest else folder_posts(args.folder)
        report = PrepareReport()
        given = Vocabulary.from_file(args.vocab) if args.vocab else None
        posts, vocab = filter_posts(
            raw[: args.limit] if args.limit else raw,
            cfg,
            vocab=given,
            seed=args.seed,
            report=report,
        )
        val_fraction, test_fraction = args.val_fraction, args.test_fraction
    records = write_dataset(
        out,
        posts,
        vocab,
        report,
        seed=args.seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        splits=splits,
    )
    _out(report.summary())
    _out(f"wrote {len(records)} examples, {len(vocab)} emojis to {out}")
    return 0 if records else 1


def _cmd_prescale(args: argparse.Namespace) -> int:
    from training.prescale import prescale_dataset

    r = prescale_dataset(
        args.data,
        args.size,
        workers=args.workers,
        quality=args.quality,
        progress=sys.stderr.isatty(),
    )
    _out(
        f"{r.total} images: {r.resized} resized, {r.linked} linked (already small), "
        f"{r.skipped} done before, {r.failed} failed"
    )
    return 1 if r.failed else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from training.train import main

    metrics = main(args)
    if metrics:
        _out(json.dumps({k: v for k, v in metrics.items() if isinstance(v, float | int)}, indent=1))
    return 0


def _cmd_train_gan(args: argparse.Namespace) -> int:
    from training.gan import main

    row = main(args)
    _out(json.dumps({k: v for k, v in row.items() if isinstance(v, float | int)}, indent=1))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_model

    if args.distribution:
        return _cmd_evaluate_distribution(args)

    m = evaluate_model(
        args.model,
        args.data,
        args.out,
        split=args.split,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        export=args.export,
        progress=sys.stderr.isatty(),
    )
    shown: dict[str, Any] = {k: v for k, v in m.items() if isinstance(v, float | int)}
    _out(json.dumps(shown, indent=1))
    _out(f"wrote {Path(args.out) / 'metrics.json'} and plots")
    if args.export:
        _out(f"exported release {args.export}")
    return 0


def _cmd_evaluate_distribution(args: argparse.Namespace) -> int:
    from training.distribution_eval import evaluate_distribution

    m = evaluate_distribution(
        args.model,
        args.data,
        args.out,
        gan=args.gan,
        split=args.split,
        n=args.n,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=sys.stderr.isatty(),
    )
    _out(json.dumps(m, ensure_ascii=False, indent=1))
    _out(f"wrote {Path(args.out) / 'distribution.json'} and plots")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from training.bench import bench_backbone, format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    results = [
        bench_backbone(
            b,
            batch_size=args.batch_size,
            input_size=args.input_size,
            iters=args.iters,
            device=args.device,
        )
        for b in args.backbones
    ]
    _out(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1) + "\n")
    return 0


def register(sub: Any) -> None:
    """Add the training subcommands to ``emojinet``'s subparsers."""
    p = sub.add_parser(
        "prepare", help="build a data set from posts, labelled folders or Fashion-MNIST"
    )
    src = p.add_argument_group("source (exactly one)")
    src.add_argument("--manifest", help="posts JSONL or CSV: image, caption[, id, hashtags, emoji]")
    src.add_argument("--folder", help="a tree ROOT/<emoji or emoji name>/*.jpg")
    src.add_argument("--fashion-mnist", action="store_true", help="Debian's dataset-fashion-mnist")
    p.add_argument("--fashion-mnist-root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", required=True, help="output data set folder")
    p.add_argument(
        "--vocab", default=None, help="a vocabulary file (default: top-N emojis of the data)"
    )
    p.add_argument("--top-n", type=int, default=100)
    p.add_argument("--min-count", type=int, default=1, help="drop emojis with fewer posts")
    p.add_argument("--max-hashtags", type=int, default=5, help="drop posts with more (0: no limit)")
    p.add_argument(
        "--require-emoji-in-caption",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="drop posts whose collection emoji is not in the caption",
    )
    p.add_argument(
        "--cap-per-emoji", type=int, default=3000, help="max posts per emoji (0: no cap)"
    )
    p.add_argument("--fold-skin-tone", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only the first N posts (per split for Fashion-MNIST)",
    )
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("prescale", help="resize a data set's images once to the training size")
    p.add_argument("--data", required=True)
    p.add_argument(
        "--size", type=int, required=True, help="short side in pixels (the train resize size)"
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.set_defaults(func=_cmd_prescale)

    from training.train import get_args_parser

    p = sub.add_parser(
        "train",
        help="fine-tune a backbone on a prepared data set",
        parents=[get_args_parser(add_help=False)],
    )
    p.set_defaults(func=_cmd_train)

    from training.gan import get_args_parser as gan_args_parser

    p = sub.add_parser(
        "train-gan",
        help="train the EmojiGAN head (conditional WGAN-GP) on a classifier's features",
        parents=[gan_args_parser(add_help=False)],
    )
    p.set_defaults(func=_cmd_train_gan)

    p = sub.add_parser("evaluate", help="metrics.json and plots for a checkpoint or release")
    p.add_argument("--model", required=True, help="checkpoint (.pt) or release artifact")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="folder for metrics.json and the plots")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument(
        "--export", default=None, metavar="PATH", help="also export the model as a release here"
    )
    dist = p.add_argument_group("distribution view (--distribution)")
    dist.add_argument(
        "--distribution",
        action="store_true",
        help="compare sampled emoji distributions with the true ones (JS, TV, mode hit rate)",
    )
    dist.add_argument("--gan", default=None, help="an EmojiGAN release to evaluate too")
    dist.add_argument("-n", type=int, default=50, help="draws per image")
    dist.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bench", help="ms per forward and forward+backward, per backbone")
    p.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18", "resnet50"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_cmd_bench)
