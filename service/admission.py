"""Admission: one budget for all the work a request brings, checked before its body is read.

A request is admitted only if its inputs fit beside everything already in the pipeline: bodies
being read, images waiting for or in the decode pool, inputs waiting for the device. Its body
bytes (``Content-Length``, or the body limit for a chunked body) count against a second budget
until it is answered. Beyond either, :meth:`Admission.admit` refuses at once with
:class:`~service.refusals.Overloaded` (429 + Retry-After), before a byte of the body is read, so a
refusal costs one parsed header block. A request that could never fit gets
:class:`~service.refusals.TooManyInputs` (413): retrying it cannot help.

While the image budget is full, :func:`door` refuses inference requests even earlier, from their
first bytes, before HTTP parsing (see :mod:`service.protocol`): under a flood of clients that
retry at once, the refusals are what the server spends its time on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from service.refusals import GateObserver, Overloaded, TooManyInputs

__all__ = ["ADMITTED_PATHS", "Admission", "Door", "Ticket", "door"]

# The POST endpoints that take images: admitted before they are routed or their body is read.
ADMITTED_PATHS = ("/suggest", "/distribution")
# Door(request line, Content-Length) → a whole 429 answer to send, or None to let it in.
Door = Callable[[bytes, int], bytes | None]

log = logging.getLogger(__name__)


class Admission:
    """Counts admitted inputs and body bytes against their limits.

    Args:
        max_inputs: the most inputs admitted and not yet answered, whatever stage they are in.
        max_bytes: the most body bytes held by admitted requests.
        retry_after_s: when a refused client should try again (seconds, at least 1).
        observers: told ``rejected("overloaded")`` on every refusal.
    """

    def __init__(
        self,
        *,
        max_inputs: int,
        max_bytes: int,
        retry_after_s: Callable[[], int] = lambda: 1,
        observers: Sequence[GateObserver] = (),
    ) -> None:
        if max_inputs < 1 or max_bytes < 1:
            raise ValueError("max_inputs and max_bytes must be at least 1")
        self.max_inputs = max_inputs
        self.max_bytes = max_bytes
        self.retry_after_s = retry_after_s
        self.observers = list(observers)
        self.inputs = 0
        self.bytes = 0

    def admit(self, inputs: int, nbytes: int) -> Ticket:
        """Take ``inputs`` inputs and ``nbytes`` bytes from the budget, or refuse now."""
        self._check(inputs, nbytes)
        self.inputs += inputs
        self.bytes += nbytes
        return Ticket(self, inputs, nbytes)

    def _check(self, inputs: int, nbytes: int) -> None:
        if inputs > self.max_inputs:
            raise TooManyInputs(
                f"{inputs} images in one request can never fit: this server takes at most "
                f"{self.max_inputs} at once; send at most {self.max_inputs} per request"
            )
        if self.inputs + inputs > self.max_inputs or self.bytes + nbytes > self.max_bytes:
            for obs in self.observers:
                obs.rejected("overloaded")
            raise Overloaded(
                f"the server is busy: {self.inputs} images ({self.bytes:,} bytes) are already "
                f"being read, decoded or waiting for the model (limits {self.max_inputs} images, "
                f"{self.max_bytes:,} bytes); retry after the Retry-After delay",
                self.retry_after_s(),
            )


class Ticket:
    """One admitted request's share of the budget; :meth:`release` gives it back (idempotent)."""

    def __init__(self, admission: Admission, inputs: int, nbytes: int) -> None:
        self._admission = admission
        self.inputs = inputs
        self.nbytes = nbytes
        self._released = False

    def resize(self, inputs: int) -> None:
        """The request turned out to hold ``inputs`` inputs: take the difference, or refuse."""
        extra = inputs - self.inputs
        if extra <= 0:
            return
        adm = self._admission
        if inputs > adm.max_inputs:
            adm._check(inputs, 0)  # raises TooManyInputs
        adm._check(extra, 0)
        adm.inputs += extra
        self.inputs = inputs

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission.inputs -= self.inputs
            self._admission.bytes -= self.nbytes


def door(admission: Admission, on_refusal: Callable[[str], None], *, max_body_bytes: int) -> Door:
    """Refuse ``POST`` to an admitted path while no image fits, from its request line.

    The answer (429 with ``Retry-After``) is built here; ``on_refusal(path)`` records it. When
    the budget has room, or the body is over the limit (413, never 429: the middleware answers
    it), this answers None and the request is parsed as usual.
    """
    lines = [(f"POST {path}".encode(), path) for path in ADMITTED_PATHS]

    def refuse(head: bytes, content_length: int) -> bytes | None:
        if admission.inputs < admission.max_inputs or content_length > max_body_bytes:
            return None
        path = next((p for line, p in lines if _starts_line(head, line)), None)
        if path is None:
            return None
        for obs in admission.observers:
            obs.rejected("overloaded")
        on_refusal(path)
        body = json.dumps(
            {
                "detail": f"the server is busy: {admission.inputs} images are already being "
                "read, decoded or waiting for the model; retry after the Retry-After delay"
            }
        ).encode()
        head_out = (
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: {admission.retry_after_s()}\r\n"
            "x-content-type-options: nosniff\r\n\r\n"
        )
        return head_out.encode() + body

    return refuse


def _starts_line(head: bytes, line: bytes) -> bool:
    """``head`` starts with ``line`` followed by a space or a query (not ``/suggestions``)."""
    return head.startswith(line) and head[len(line) : len(line) + 1] in (b" ", b"?")
