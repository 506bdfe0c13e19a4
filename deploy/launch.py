"""The one place that says how the server is started: the container and the tests share it.

The Dockerfile's ``CMD`` must equal ``serve_argv("0.0.0.0", 8000)`` (``tests/test_dockerfile.py``
checks it), and the integration and load tests start the server with ``serve_cmd_for_tests``,
so what is tested is what the container runs. Every other setting comes from ``EMOJINET_*``
environment variables (``service/settings.py``).
"""

from __future__ import annotations

import sys

__all__ = ["CONTAINER_PORT", "serve_argv", "serve_cmd_for_tests"]

# The port the container listens on: Dockerfile EXPOSE, the ALB target group, the load balancer.
CONTAINER_PORT = 8000


def _serve_args(host: str, port: int) -> list[str]:
    return ["serve", "--host", host, "--port", str(port)]


def serve_argv(host: str, port: int) -> list[str]:
    """The server command line as the container runs it (console script on ``PATH``)."""
    return ["emojinet", *_serve_args(host, port)]


def serve_cmd_for_tests(host: str, port: int) -> list[str]:
    """The same command line through this interpreter, so tests need no activated venv."""
    return [sys.executable, "-m", "emojinet", *_serve_args(host, port)]
