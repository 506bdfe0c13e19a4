"""Why the service did not run a request, and who hears about it.

These are domain errors: the pipeline raises them, :mod:`service.errors` alone maps them to HTTP
(429, 503 with ``Retry-After``; 413 for :class:`TooManyInputs`).
"""

from __future__ import annotations

from typing import Protocol

from emojinet.errors import EmojiNetError

__all__ = [
    "DeadlineExceeded",
    "GateError",
    "GateObserver",
    "Overloaded",
    "ShuttingDown",
    "TooManyInputs",
]


class GateError(EmojiNetError):
    """The gate did not run a job; ``retry_after_s`` says when trying again makes sense."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(GateError):
    """The queue is full: the job was refused before it waited."""


class DeadlineExceeded(GateError):
    """The job waited longer than the queue deadline and was dropped without running."""


class TooManyInputs(EmojiNetError):
    """One request holds more inputs than the server ever admits at once: retrying cannot help."""


class GateObserver(Protocol):
    """Receives the gate's measurements. Called on the event loop; must not block."""

    def queue_wait(self, seconds: float, *, ran: bool) -> None:
        """A job left the queue after ``seconds``: ``ran`` False means it expired."""

    def batch(self, size: int, seconds: float, *, ok: bool) -> None:
        """A forward pass over ``size`` jobs took ``seconds``."""

    def depth(self, depth: int) -> None:
        """The number of waiting jobs changed."""

    def rejected(self, reason: str) -> None:
        """A job was refused (``overloaded``) or dropped (``deadline``)."""


class ShuttingDown(GateError):
    """The server is draining after SIGTERM and takes no new requests."""
