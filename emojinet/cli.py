"""The ``emojinet`` command line: ``suggest``, ``export`` and ``gallery`` here; other packages
(the service's ``serve``, the training commands) add theirs through the ``emojinet.commands``
entry-point group, so the library never imports them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emojinet import __version__
from emojinet.cli_args import VOCAB_HELP, Parser, add_model_args, float_range, int_range
from emojinet.errors import EmojiNetError

if TYPE_CHECKING:
    from emojinet.gan_head import GanHead
    from emojinet.predictor import Prediction, Predictor
    from emojinet.sampling import Distribution

__all__ = ["build_parser", "main"]

log = logging.getLogger("emojinet")

#: Entry-point group of subcommand providers: each entry is a ``register(subparsers)`` function
#: that adds parsers and sets ``func`` on them (see ``pyproject.toml``).
COMMANDS_GROUP = "emojinet.commands"

#: Optional dependencies, by top-level module, and the extra that installs them.
EXTRAS = {"matplotlib": "train", "sklearn": "train"}


def _cmd_suggest(args: argparse.Namespace) -> int:
    from emojinet.predictor import Predictor

    predictor = Predictor.load(
        args.model, backend=args.backend, device=args.device, vocab=args.vocab, deny=args.deny
    )
    gan = None
    if args.gan:
        from emojinet.gan_head import GanHead

        if not args.distribution:
            print("emojinet: --gan needs --distribution", file=sys.stderr)
            return 2
        gan = GanHead.load(
            args.gan,
            model_sha256=predictor.info.sha256,
            vocab=predictor.vocab,
            denied=predictor.denied,
        )
    failed = 0
    for path in args.images:
        try:
            data = Path(path).read_bytes()
            (prediction,) = predictor.predict(
                [data], k=args.top_k, threshold=args.threshold, features=gan is not None
            )
        except OSError as exc:
            failed += 1
            _report_error(args, path, f"cannot read file: {exc.strerror or exc}")
            continue
        except EmojiNetError as exc:
            failed += 1
            _report_error(args, path, str(exc))
            continue
        _print_prediction(args, path, prediction, predictor, gan)
        sys.stdout.flush()
    return 1 if failed else 0


def _print_prediction(
    args: argparse.Namespace,
    path: str,
    prediction: Prediction,
    predictor: Predictor,
    gan: GanHead | None,
) -> None:
    """One image's suggestions (and with ``--distribution`` its sampled distribution): with
    ``--json`` one line, ``{"image", "emojis"[, "distribution"]}``; else a small table."""
    dist = _distribution(args, prediction, predictor, gan) if args.distribution else None
    if args.json:
        line: dict[str, Any] = {
            "image": str(path),
            "emojis": [
                {"emoji": s.emoji, "name": s.name, "score": round(s.score, 6)}
                for s in prediction.suggestions
            ],
        }
        if dist is not None:
            line["distribution"] = dist.to_dict()
        print(json.dumps(line, ensure_ascii=False))
        return
    print(f"{path}")
    for s in prediction.suggestions:
        print(f"  {s.emoji}  {s.score:6.3f}  {s.name}")
    if dist is not None:
        print(dist.format())


def _distribution(
    args: argparse.Namespace, prediction: Prediction, predictor: Predictor, gan: GanHead | None
) -> Distribution:
    """``-n`` draws from the EmojiGAN head (``--gan``) or the classifier's scores."""
    if gan is not None:
        assert prediction.features is not None  # asked for with features=True
        return gan.distribution(prediction.features, n=args.n, seed=args.seed)
    from emojinet.sampling import sample_distribution

    return sample_distribution(
        prediction.probs, predictor.vocab, n=args.n, temperature=args.temperature, seed=args.seed
    )


def _report_error(args: argparse.Namespace, path: str, message: str) -> None:
    if args.json:
        print(json.dumps({"image": str(path), "error": message}, ensure_ascii=False))
    print(f"emojinet: {path}: {message}", file=sys.stderr)


def _cmd_export(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from emojinet.backends import OnnxBackend, TorchBackend, export_onnx
    from emojinet.checkpoint import load

    model, _ = load(args.model, vocab=args.vocab)
    out = Path(args.out)
    export_onnx(model, out)
    size = model.preprocess.input_size
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0)).numpy()
    ref = TorchBackend(model, "cpu").run(x).probs
    got = OnnxBackend(out).run(x).probs
    err = float(np.abs(ref - got).max())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |onnx - torch| = {err:.2e}")
    if err > args.atol:
        print(
            f"emojinet: ONNX output differs from torch by {err:.2e} > {args.atol}", file=sys.stderr
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Cheap: no torch, no training code (they load when a command runs)."""
    parser = Parser(prog="emojinet", description="Suggest emojis for photos.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("suggest", help="suggest emojis for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int_range(1, 50), default=5, help="suggestions per image")
    p.add_argument(
        "--threshold",
        type=float_range(0.0, 1.0),
        default=None,
        help="leave out suggestions scoring less (default: none left out)",
    )
    add_model_args(p)
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per image and line: {"image", "emojis"[, "distribution"]}',
    )
    p.add_argument("--distribution", action="store_true", help="also sample the emoji distribution")
    p.add_argument("-n", type=int_range(1, 1000), default=50, help="draws for --distribution")
    p.add_argument(
        "--temperature",
        type=float_range(0.01, 100.0),
        default=1.0,
        help="sharpen (<1) or flatten (>1) the scores for --distribution",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed for --distribution (default: random)"
    )
    p.add_argument(
        "--gan",
        default=None,
        metavar="PATH",
        help="draw --distribution from this EmojiGAN release (trained on --model's features)",
    )
    p.set_defaults(func=_cmd_suggest)

    p = sub.add_parser("export", help="export a model to ONNX and check it against torch")
    p.add_argument("--onnx", dest="out", required=True, metavar="PATH", help="output .onnx file")
    p.add_argument(
        "--model", default=None, help="release artifact or checkpoint (default: built-in)"
    )
    p.add_argument("--vocab", default=None, help=VOCAB_HELP)
    p.add_argument("--atol", type=float, default=1e-4, help="largest |onnx - torch| allowed")
    p.set_defaults(func=_cmd_export)

    from emojinet import gallery_cli

    gallery_cli.register(sub)
    for register in _command_providers():
        register(sub)
    return parser


def _command_providers() -> list[Callable[[Any], None]]:
    """The installed ``emojinet.commands`` entry points, by name; unloadable ones are skipped."""
    providers = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            providers.append(ep.load())
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == ep.value.split(".")[0]:
                raise  # the provider's own package is broken: say so
            # An optional part whose third-party dependencies are not installed.
            log.debug("skipping %s commands: %s", ep.name, exc)
    return providers


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except EmojiNetError as exc:
        print(f"emojinet: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"emojinet {args.command}: needs {exc.name}: pip install 'emojinet[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # a file or folder the command cannot read or write
        print(f"emojinet {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
