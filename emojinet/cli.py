"""The ``emojinet`` command line: suggest, export, serve, and the training subcommands."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from emojinet.errors import EmojiNetError

__all__ = ["build_parser", "main"]

log = logging.getLogger("emojinet")

# Modules that add subcommands: each has ``register(subparsers)``, setting ``func`` on its parsers.
_PLUGINS = ("training.cli", "service.cli", "emojinet.gallery_cli")

VOCAB_HELP = (
    "built-in model vocabulary: all (every current emoji; the default), "
    "default (the 500 most used) or a vocabulary file"
)


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
            x = predictor.preprocess(data)
        except OSError as exc:
            failed += 1
            _report_error(args, path, f"cannot read file: {exc.strerror or exc}")
            continue
        except EmojiNetError as exc:
            failed += 1
            _report_error(args, path, str(exc))
            continue
        if gan is not None:
            probs_b, features = predictor.predict_with_features(x[None])
            probs = probs_b[0]
        else:
            probs = predictor.predict_batch(x[None])[0]
        suggestions = predictor.top_k(probs, args.top_k, args.threshold)
        if args.json:
            print(
                json.dumps(
                    {
                        "image": str(path),
                        "emojis": [
                            {"emoji": s.emoji, "name": s.name, "score": round(s.score, 6)}
                            for s in suggestions
                        ],
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(f"{path}")
            for s in suggestions:
                print(f"  {s.emoji}  {s.score:6.3f}  {s.name}")
        if args.distribution:
            from emojinet.sampling import sample_distribution

            if gan is not None:
                dist = gan.distribution(features[0], n=args.n, seed=args.seed)
            else:
                dist = sample_distribution(
                    probs, predictor.vocab, n=args.n, temperature=args.temperature, seed=args.seed
                )
            print(json.dumps(dist.to_dict(), ensure_ascii=False) if args.json else dist.format())
        sys.stdout.flush()
    return 1 if failed else 0


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
    ref = TorchBackend(model, "cpu").predict(x)
    got = OnnxBackend(out).predict(x)
    err = float(np.abs(ref - got).max())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |onnx - torch| = {err:.2e}")
    if err > args.atol:
        print(
            f"emojinet: ONNX output differs from torch by {err:.2e} > {args.atol}", file=sys.stderr
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emojinet", description="Suggest emojis for photos.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("suggest", help="suggest emojis for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=_int_range(1, 50), default=5)
    p.add_argument("--threshold", type=_float_range(0.0, 1.0), default=None)
    _model_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--distribution", action="store_true", help="also sample the emoji distribution")
    p.add_argument("-n", type=_int_range(1, 1000), default=50, help="draws for --distribution")
    p.add_argument("--temperature", type=_float_range(0.01, 100.0), default=1.0)
    p.add_argument("--seed", type=int, default=None)
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
    p.add_argument("--atol", type=float, default=1e-4)
    p.set_defaults(func=_cmd_export)

    for plugin in _PLUGINS:
        if importlib.util.find_spec(plugin) is not None:
            importlib.import_module(plugin).register(sub)
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default=None, help="release artifact or checkpoint (default: built-in)"
    )
    p.add_argument("--vocab", default=None, help=VOCAB_HELP)
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="torch")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument(
        "--deny",
        type=_comma_list,
        default=_comma_list(os.environ.get("EMOJINET_DENY_LIST", "")),
        metavar="EMOJIS",
        help="comma-separated emojis never to suggest or sample (default: $EMOJINET_DENY_LIST)",
    )


def _comma_list(s: str) -> list[str]:
    return [item.strip() for item in s.split(",") if item.strip()]


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(s: str) -> int:
        v = int(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(s: str) -> float:
        v = float(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v

    return parse


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
    except KeyboardInterrupt:
        return 130
