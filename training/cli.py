"""``emojinet prepare | prescale | train | train-gan | evaluate | bench``.

Registered by ``emojinet.cli``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

__all__ = ["register"]

Command = Callable[[argparse.Namespace], int]


def _training_command(cmd: Command) -> Command:
    """``cmd`` with OpenMP threads that yield, unless the user set ``OMP_WAIT_POLICY``.

    Spinning OpenMP threads slow training down several-fold on a shared CPU. Set only when a
    training command runs (before it imports torch), so ``emojinet serve`` is left as it is.
    """

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        return cmd(args)

    return run


def _plots_possible(command: str, modules: tuple[str, ...]) -> bool:
    """Whether ``modules`` (the plots' extra) import; if not, a one-line note says so."""
    missing = []
    for name in modules:
        try:
            import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        _out(
            f"emojinet {command}: no plots: {', '.join(missing)} not installed "
            "(pip install 'emojinet[train]')",
            file=sys.stderr,
        )
    return not missing


def _out(*parts: object, file: Any = None) -> None:
    """The command line's output."""
    print(*parts, file=file or sys.stdout)


def _prepare_sources(args: argparse.Namespace, out: Path) -> list[Any]:
    """The sources the prepare options name, in a fixed order."""
    from training.errors import OptionsError
    from training.posts import folder_posts, read_posts
    from training.sources import Source

    sources: list[Any] = []
    if args.manifest:
        raw = read_posts(args.manifest)
        sources.append(
            Source.of("manifest", raw[: args.limit] if args.limit else raw, captions=True)
        )
    if args.folder:
        raw = folder_posts(args.folder)
        sources.append(Source.of("folder", raw[: args.limit] if args.limit else raw))
    if args.fashion_mnist:
        from training.fashion_mnist import fashion_mnist_source

        sources.append(
            fashion_mnist_source(
                out,
                root=args.fashion_mnist_root,
                limit=args.limit,
                per_class=args.fashion_mnist_per_class,
            )
        )
    if args.clipart:
        from training.clipart import clipart_source

        sources.append(clipart_source(args.clipart))
    if args.emoji_images:
        from training.emoji_images import emoji_image_source

        sources += [emoji_image_source(spec, out) for spec in args.emoji_images]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise OptionsError(f"a source is given twice: {names}")
    return sources


def _cmd_prepare(args: argparse.Namespace) -> int:
    from emojinet.vocab import Vocabulary
    from training.errors import OptionsError
    from training.prepare import FilterConfig, write_dataset
    from training.sources import MixConfig, mix_sources, read_holdout

    if args.val_fraction + args.test_fraction >= 1:
        raise OptionsError("--val-fraction plus --test-fraction must be below 1: train needs posts")
    out = Path(args.out)
    sources = _prepare_sources(args, out)
    if not sources:
        _out(
            "emojinet prepare: give at least one source: --manifest, --folder, --fashion-mnist, "
            "--clipart, --emoji-images",
            file=sys.stderr,
        )
        return 2
    filters = FilterConfig(
        max_hashtags=args.max_hashtags or None,
        require_emoji_in_caption=args.require_emoji_in_caption,
        cap_per_emoji=args.max_per_emoji or None,
        fold_skin_tone=args.fold_skin_tone,
        top_n=args.top_n,
        min_count=args.min_count,
    )
    cfg = MixConfig(filters, args.seed, args.val_fraction, args.test_fraction, args.keep_unlabelled)
    posts, vocab, report = mix_sources(
        sources,
        cfg,
        vocab=Vocabulary.from_file(args.vocab) if args.vocab else None,
        holdout=read_holdout(args.holdout) if args.holdout else None,
    )
    records = write_dataset(out, posts, vocab, report, seed=args.seed)
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

    plots = _plots_possible("evaluate", ("matplotlib",))
    m = evaluate_model(
        args.model,
        args.data,
        args.out,
        split=args.split,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        export=args.export,
        plots=plots,
        progress=sys.stderr.isatty(),
    )
    shown: dict[str, Any] = {k: v for k, v in m.items() if isinstance(v, float | int)}
    _out(json.dumps(shown, indent=1))
    _out(f"wrote {Path(args.out) / 'metrics.json'}" + (" and plots" if plots else ""))
    if args.export:
        _out(f"exported release {args.export}")
    return 0


def _cmd_evaluate_distribution(args: argparse.Namespace) -> int:
    from training.distribution_eval import evaluate_distribution

    plots = _plots_possible("evaluate", ("matplotlib", "sklearn"))
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
        plots=plots,
        progress=sys.stderr.isatty(),
    )
    _out(json.dumps(m, ensure_ascii=False, indent=1))
    _out(f"wrote {Path(args.out) / 'distribution.json'}" + (" and plots" if plots else ""))
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
    from emojinet.cli_args import float_range, int_range
    from training.options import gan_args_parser, train_args_parser

    p = sub.add_parser(
        "prepare",
        help="build a data set from posts, labelled folders, clip art, emoji pictures and "
        "Fashion-MNIST",
    )
    src = p.add_argument_group("sources (one or more, mixed into one data set)")
    src.add_argument("--manifest", help="posts JSONL or CSV: image, caption[, id, hashtags, emoji]")
    src.add_argument("--folder", help="a tree ROOT/<emoji or emoji name>/*.jpg")
    src.add_argument("--fashion-mnist", action="store_true", help="Debian's dataset-fashion-mnist")
    src.add_argument(
        "--clipart",
        nargs="?",
        const="/usr/share/openclipart/png",
        default=None,
        metavar="ROOT",
        help="Debian's openclipart-png, labelled by the emojis its paths name "
        "(default ROOT: %(const)s)",
    )
    src.add_argument(
        "--emoji-images",
        nargs="+",
        default=None,
        metavar="DIR",
        help="emoji pictures, train only: unpacked npm emoji-datasource-<vendor> packages "
        "and/or 'noto' (Debian's Noto Color Emoji, rendered)",
    )
    p.add_argument("--fashion-mnist-root", default="/usr/share/datasets/fashion-mnist")
    p.add_argument(
        "--fashion-mnist-per-class",
        default=None,
        metavar="N",
        type=int_range(1, 10**9),
        help="keep the first N images of each class in each official split",
    )
    p.add_argument(
        "--holdout",
        default=None,
        metavar="FILE",
        help='a JSON list of {"file", "accept"}: those pictures (and byte-identical copies '
        "anywhere) are test only, labelled with their accepted emojis",
    )
    p.add_argument(
        "--keep-unlabelled",
        action="store_true",
        help='keep clip art that names no vocabulary emoji in train with "emojis": [] '
        "(for distillation); default: drop it",
    )
    p.add_argument("--out", required=True, help="output data set folder")
    p.add_argument(
        "--vocab", default=None, help="a vocabulary file (default: top-N emojis of the data)"
    )
    p.add_argument(
        "--top-n",
        type=int_range(1, 10**6),
        default=100,
        help="vocabulary size: the emojis with the most train pictures (the emoji pictures "
        "do not count; ties: the usage prior)",
    )
    p.add_argument("--min-count", type=int, default=1, help="drop emojis with fewer posts")
    p.add_argument("--max-hashtags", type=int, default=5, help="drop posts with more (0: no limit)")
    p.add_argument(
        "--require-emoji-in-caption",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="drop posts whose collection emoji is not in the caption",
    )
    p.add_argument(
        "--max-per-emoji",
        "--cap-per-emoji",
        dest="max_per_emoji",
        type=int_range(0, 10**9),
        default=3000,
        help="max train examples per emoji, seeded (0: no cap; Fashion-MNIST and the emoji "
        "pictures are not capped)",
    )
    p.add_argument("--fold-skin-tone", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--val-fraction", type=float_range(0.0, 1.0), default=0.1)
    p.add_argument("--test-fraction", type=float_range(0.0, 1.0), default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only the first N posts of a manifest or folder (per split for Fashion-MNIST)",
    )
    p.set_defaults(func=_training_command(_cmd_prepare))

    p = sub.add_parser("prescale", help="resize a data set's images once to the training size")
    p.add_argument("--data", required=True)
    p.add_argument(
        "--size", type=int, required=True, help="short side in pixels (the train resize size)"
    )
    p.add_argument(
        "--workers", type=int_range(1, 256), default=None, help="processes (default: all cores)"
    )
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.set_defaults(func=_training_command(_cmd_prescale))

    p = sub.add_parser(
        "train",
        help="fine-tune a backbone on a prepared data set",
        parents=[train_args_parser(add_help=False)],
    )
    p.set_defaults(func=_training_command(_cmd_train))

    p = sub.add_parser(
        "train-gan",
        help="train the EmojiGAN head (conditional WGAN-GP) on a classifier's features",
        parents=[gan_args_parser(add_help=False)],
    )
    p.set_defaults(func=_training_command(_cmd_train_gan))

    p = sub.add_parser("evaluate", help="metrics.json and plots for a checkpoint or release")
    p.add_argument("--model", required=True, help="checkpoint (.pt) or release artifact")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="folder for metrics.json and the plots")
    p.add_argument("--batch-size", type=int_range(1, 1 << 16), default=128)
    p.add_argument("--workers", type=int_range(0, 256), default=2, help="data-loading processes")
    p.add_argument("--limit", type=int_range(1, 10**9), default=None, help="the first N images")
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
    p.set_defaults(func=_training_command(_cmd_evaluate))

    p = sub.add_parser("bench", help="ms per forward and forward+backward, per backbone")
    p.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet18", "resnet50"])
    p.add_argument("--batch-size", type=int_range(1, 1 << 16), default=16)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the results here")
    p.set_defaults(func=_training_command(_cmd_bench))
