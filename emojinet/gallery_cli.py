"""``emojinet gallery IMAGES_DIR --out report/``: the command; ``emojinet.cli`` registers it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from emojinet.cli_args import Parser

__all__ = ["register"]


def _cmd_gallery(args: argparse.Namespace) -> int:
    from emojinet.gallery import GalleryConfig, build_gallery, find_images
    from emojinet.predictor import Predictor

    find_images(args.images_dir)  # a missing directory fails before the model loads
    predictor = Predictor.load(
        args.model, backend=args.backend, device=args.device, vocab=args.vocab, deny=args.deny
    )
    cfg = GalleryConfig(
        top_n=args.top_n,
        per_image=args.per_image,
        batch_size=args.batch_size,
        workers=args.workers,
        min_score=args.min_score,
        max_cards=args.max_cards,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    started = time.perf_counter()
    result = build_gallery(args.images_dir, predictor, args.out, cfg)
    sys.stdout.write(
        f"{len(result.images)} images: {result.scored} scored, {result.cached} from the cache "
        f"({time.perf_counter() - started:.1f} s); {len(result.cards)} emoji cards\n"
        f"wrote {Path(args.out) / 'index.html'}\n"
    )
    for path in result.unreadable:
        sys.stderr.write(f"emojinet: could not read {path}\n")
    return 0


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add ``gallery`` to ``emojinet``'s subcommands."""
    from emojinet.cli_args import add_model_args, float_range, int_range

    p = sub.add_parser(
        "gallery",
        help="an HTML report of the images the model ties most strongly to each emoji",
        description="Score every image under IMAGES_DIR; write index.html (per emoji its top "
        "images, per image its top emojis, scores under --min-score left out), gallery.json and a "
        "PNG card per confident emoji. "
        "Scores are cached in OUT/scores.npz: a second run only scores new or changed files.",
    )
    p.add_argument("images_dir", metavar="IMAGES_DIR")
    p.add_argument("--out", default="report", help="report directory (default: report)")
    add_model_args(p)
    p.add_argument("--top-n", type=int_range(1, 100), default=8, help="images per emoji")
    p.add_argument("--per-image", type=int_range(1, 20), default=5, help="emojis per image")
    p.add_argument("--batch-size", type=int_range(1, 1024), default=32)
    p.add_argument("--workers", type=int_range(1, 64), default=2, help="image decoding threads")
    p.add_argument(
        "--min-score",
        type=float_range(0.0, 1.0),
        default=0.05,
        help="the least score shown (default 0.05, 5%%): lower-scoring images are left out of each "
        "emoji's row and card, lower-scoring emojis out of each image's list",
    )
    p.add_argument("--max-cards", type=int_range(0, 10_000), default=100)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_gallery)
