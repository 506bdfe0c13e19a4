"""Argument types, option groups and the parser class shared by the ``emojinet`` subcommands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

__all__ = [
    "VOCAB_HELP",
    "Parser",
    "add_model_args",
    "comma_list",
    "float_range",
    "int_range",
]

VOCAB_HELP = (
    "built-in model vocabulary: all (every current emoji; the default), "
    "default (the 500 most used) or a vocabulary file"
)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose help shows each option's default, unless it has none
    (None, a flag's False) or its help already says it; subparsers are made of it too."""

    def format_help(self) -> str:
        for action in self._actions:  # argument groups' too
            default = action.default
            text = action.help or ""
            hidden = (
                default is None
                or default is False
                or default is argparse.SUPPRESS
                or text == argparse.SUPPRESS
                or "default" in text
            )
            if action.option_strings and not hidden:
                action.help = f"{text} (default: %(default)s)".lstrip()
        return super().format_help()


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--vocab``, ``--backend``, ``--device``, ``--deny``: how to get a predictor."""
    p.add_argument(
        "--model", default=None, help="release artifact or checkpoint (default: built-in)"
    )
    p.add_argument("--vocab", default=None, help=VOCAB_HELP)
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="auto: torch on a GPU, else ONNX Runtime (several times faster on a CPU)",
    )
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda[:N]")
    p.add_argument(
        "--deny",
        type=comma_list,
        default=comma_list(os.environ.get("EMOJINET_DENY_LIST", "")),
        metavar="EMOJIS",
        help="comma-separated emojis never to suggest or sample (default: $EMOJINET_DENY_LIST)",
    )


def comma_list(s: str) -> list[str]:
    return [item.strip() for item in s.split(",") if item.strip()]


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(s: str) -> int:
        v = int(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v

    parse.__name__ = "int"  # argparse's message: "invalid int value: 'x'"
    return parse


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(s: str) -> float:
        v = float(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v

    parse.__name__ = "float"
    return parse
