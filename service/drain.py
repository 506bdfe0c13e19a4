"""The shutdown clock, shared by the server (SIGTERM), the service state and the request middleware.

SIGTERM starts it: from then on new work is refused, accepted work may finish until
``deadline``, and then :meth:`Drain.cut` ends every wait that is still open: a client still
trickling its body, an image still waiting for a decode slot. Their requests are answered 503
(:class:`ShuttingDown`, with ``Connection: close``), never 500, so the process can exit on time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from service.refusals import ShuttingDown

__all__ = ["Drain", "ShuttingDown"]


class Drain:
    """When the drain started, when it must end, and the waits to cut when it does."""

    def __init__(self) -> None:
        self.deadline: float | None = None  # event-loop time by which accepted work must be done
        self.cut_done = False
        self._waits: set[asyncio.Timeout] = set()

    @property
    def started(self) -> bool:
        return self.deadline is not None

    def start(self, timeout_s: float) -> None:
        """Start the clock (a second call keeps the first deadline)."""
        if self.deadline is None:
            self.deadline = asyncio.get_running_loop().time() + timeout_s

    def left_s(self) -> float:
        """Seconds until the deadline (0 when past it; ``inf`` before the drain starts)."""
        if self.deadline is None:
            return float("inf")
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    @contextlib.asynccontextmanager
    async def cuttable(self, timeout_s: float) -> AsyncIterator[None]:
        """``asyncio.timeout(timeout_s)`` that :meth:`cut` also ends (callers check ``cut_done``).

        Raises:
            TimeoutError: the timeout passed or the drain cut the wait.
        """
        async with asyncio.timeout(0 if self.cut_done else timeout_s) as waiting:
            self._waits.add(waiting)
            try:
                yield
            finally:
                self._waits.discard(waiting)

    def cut(self) -> None:
        """End every :meth:`cuttable` wait now, and every later one at once."""
        self.cut_done = True
        now = asyncio.get_running_loop().time()
        for waiting in list(self._waits):
            waiting.reschedule(now)
