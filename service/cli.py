"""``emojinet serve``: its options; the server itself is :mod:`service.server`.

Cheap to import (``emojinet --help`` registers it): uvicorn and the settings load when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``emojinet`` command line."""
    p = subparsers.add_parser(
        "serve",
        help="run the HTTP service (one worker; other settings from EMOJINET_* variables)",
        description="Run the HTTP service. Every setting not given here comes from EMOJINET_* "
        "environment variables (service/settings.py).",
    )
    p.add_argument("--host", default=None, help="address to bind (EMOJINET_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (EMOJINET_PORT, 8000)")
    p.add_argument("--model", default=None, help="release artifact (EMOJINET_MODEL; built-in)")
    p.add_argument(
        "--gan-model", default=None, help="EmojiGAN artifact for head=gan (EMOJINET_GAN_MODEL)"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="EMOJINET_DEVICE, auto: a GPU if there is one",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        default=None,
        help="EMOJINET_BACKEND, auto: torch on a GPU, else ONNX Runtime",
    )
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.server import serve
    from service.settings import Settings

    keys = ("host", "port", "model", "gan_model", "device", "backend")
    given = {k: getattr(args, k) for k in keys}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            name = f"EMOJINET_{where.upper()}" if where else "the settings"
            msg = str(err["msg"]).removeprefix("Value error, ")
            print(f"emojinet serve: {name}: {msg}", file=sys.stderr)
        return 2
    code = serve(settings)
    # The drain has answered every request and the lifespan has flushed the metrics: exit now,
    # without the interpreter's teardown (joining idle worker threads, freeing torch: ~1 s that
    # would push the exit past the drain timeout the load balancer and `docker stop` expect).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
