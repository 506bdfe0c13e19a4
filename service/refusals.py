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
    "RefusalHold",
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

    @classmethod
    def in_queue(cls, deadline_s: float, waited_s: float, retry_after_s: int) -> DeadlineExceeded:
        """The refusal of a job that waited ``waited_s`` for the model itself."""
        return cls(
            f"the request could not start on the model within its {deadline_s * 1000:.0f} ms "
            f"queue deadline (it waited {waited_s * 1000:.0f} ms for the model itself), so it "
            "was not run; retry after the Retry-After delay",
            retry_after_s,
        )


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


class RefusalHold:
    """How long an overload refusal (429, or a 503 decided before the work) waits to be answered.

    A refusal costs the server little, but a client that retries at once, heedless of
    Retry-After, turns cheap refusals into a flood that starves the admitted work (measured:
    60 such clients cut the answers to a third). Held for ``delay_s`` after its request arrived,
    a refusal costs such a client a second per try, and the held connection costs the server a
    timer. At most ``limit`` refusals are held at once; beyond that they are answered at once, so
    held refusals never take more than a share of the connections (under an open-loop flood
    every refusal would otherwise hold a connection for ``delay_s``).
    """

    def __init__(self, delay_s: float, limit: int) -> None:
        if delay_s < 0 or limit < 0:
            raise ValueError("delay_s and limit must be >= 0")
        self.delay_s = delay_s
        self.limit = limit
        self.held = 0

    def take(self) -> float:
        """The delay for one more refusal (0: answer it now); after a positive one, call
        :meth:`give` when it is answered or its connection is gone."""
        if self.delay_s <= 0 or self.held >= self.limit:
            return 0.0
        self.held += 1
        return self.delay_s

    def give(self) -> None:
        self.held -= 1
