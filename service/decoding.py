"""The decode stage: image decoding in a thread pool, fairly between requests, under the deadline.

At most ``workers`` images decode at once. The others wait, and a free slot goes to the requests
in turn (round-robin), so one request with 16 large images cannot make a small photo sent just
after it wait for all 16. The queue deadline counts
from the moment a request's body is in, so it covers waiting for a decode slot, decoding and
waiting for the device: an image that cannot start decoding by the deadline is dropped without
costing anything more (:class:`~service.refusals.DeadlineExceeded`, 503). A large image (1 MP or
more) whose decode, at the per-pixel cost measured so far for its format, plus the expected wait
for the device, would end after the deadline is dropped before decoding too: otherwise its work
would be thrown away by the device gate.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numpy as np
import numpy.typing as npt

from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.preprocess import probe_image
from service.drain import Drain
from service.refusals import DeadlineExceeded, GateObserver, ShuttingDown

__all__ = ["DecodeStage"]

Array = npt.NDArray[np.float32]
Preprocess = Callable[[bytes], Array]

_LARGE = 1_000_000  # pixels; smaller images are cheap enough to always try
_PRIOR_S_PER_PIXEL = 25e-9  # a 40 MP PNG decodes in about 0.8 s here; measured costs replace it


class _FairSlots:
    """``workers`` slots handed out round-robin between requests (each a ``key``)."""

    def __init__(self, workers: int) -> None:
        self.free = workers
        self._waiting: OrderedDict[int, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, key: int) -> None:
        if self.free and not self._waiting:
            self.free -= 1
            return
        got: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(got)
        try:
            await got
        except BaseException:
            if got.done() and not got.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            else:
                queue = self._waiting.get(key)
                if queue is not None and got in queue:
                    queue.remove(got)
                    if not queue:
                        del self._waiting[key]
            raise

    def release(self) -> None:
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            got = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # this request goes to the back of the line
            else:
                del self._waiting[key]
            if not got.done():
                got.set_result(None)
                return
        self.free += 1


class DecodeStage:
    """Runs ``preprocess(data)`` for each image in ``executor``, ``workers`` at a time.

    Args:
        executor: the threads that decode (``workers`` of them).
        workers: how many images decode at once.
        max_pixels: the pixel limit the header is checked against before anything else.
        expected_device_wait_s: how long a decoded input will wait for the device, roughly.
        observers: told ``rejected("deadline")`` for every image dropped here.
        drain: at shutdown its cut ends the waits for a slot (:class:`ShuttingDown`).
    """

    def __init__(
        self,
        executor: Executor,
        *,
        workers: int,
        max_pixels: int,
        expected_device_wait_s: Callable[[], float] = lambda: 0.0,
        observers: Sequence[GateObserver] = (),
        drain: Drain | None = None,
    ) -> None:
        self._executor = executor
        self._drain = drain or Drain()
        self._slots = _FairSlots(workers)
        self._keys = itertools.count()
        self.max_pixels = max_pixels
        self.expected_device_wait_s = expected_device_wait_s
        self.observers = list(observers)
        self.waiting = 0  # images waiting for a slot
        self.running = 0  # images decoding now
        self._s_per_pixel: dict[str, float] = {}

    async def decode_all(
        self, preprocess: Preprocess, images: Sequence[bytes], deadline: float, *, multi: bool
    ) -> list[Array]:
        """Decode every image (in parallel up to ``workers``); the first failure cancels the rest.

        Errors about one image of several name it (``images[2]: ...``).
        """
        key = next(self._keys)
        tasks = [
            asyncio.ensure_future(self.decode(preprocess, data, deadline, key)) for data in images
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # no-op for finished ones; waiting ones never start
        errors = [(i, t.exception()) for i, t in enumerate(tasks) if t.done() and not t.cancelled()]
        for i, exc in errors:
            if isinstance(exc, (InvalidImageError, ImageTooLargeError)) and multi:
                raise type(exc)(f"images[{i}]: {exc}") from exc
            if exc is not None:
                raise exc
        return [t.result() for t in tasks]

    async def decode(
        self, preprocess: Preprocess, data: bytes, deadline: float, key: int | None = None
    ) -> Array:
        """One image of request ``key``; ``deadline`` is a ``time.perf_counter()`` value."""
        self.waiting += 1
        try:
            async with self._drain.cuttable(max(deadline - time.perf_counter(), 0.0)):
                await self._slots.acquire(next(self._keys) if key is None else key)
        except TimeoutError:
            if self._drain.cut_done:
                raise ShuttingDown("the server shut down before this image was decoded") from None
            self._dropped()
            raise DeadlineExceeded(
                "the server is busy: the image could not start decoding within the queue "
                "deadline, so it was not processed; retry after the Retry-After delay"
            ) from None
        finally:
            self.waiting -= 1
        self.running += 1
        job = functools.partial(
            self._run, preprocess, data, deadline, self.expected_device_wait_s()
        )
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        except BaseException:
            self._free(None)
            raise
        # The slot stays taken until the thread is done, even if this request is cancelled.
        future.add_done_callback(self._free)
        try:
            return await asyncio.shield(future)
        except DeadlineExceeded:
            self._dropped()
            raise

    def _free(self, future: asyncio.Future[Array] | None) -> None:
        if future is not None and not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" log if the caller left
        self.running -= 1
        self._slots.release()

    def _dropped(self) -> None:
        for obs in self.observers:
            obs.rejected("deadline")

    def _run(self, preprocess: Preprocess, data: bytes, deadline: float, wait_s: float) -> Array:
        """In a worker thread: read the header, skip hopeless work, decode, learn the cost."""
        header = probe_image(data, max_pixels=self.max_pixels)
        rate = self._s_per_pixel.get(header.format, _PRIOR_S_PER_PIXEL)
        large = header.pixels >= _LARGE
        started = time.perf_counter()
        cost = header.pixels * rate + wait_s if large else 0.0
        if started + cost > deadline:
            raise DeadlineExceeded(
                f"the server is busy: the {header.width}x{header.height} image would not be "
                "decoded before the queue deadline, so it was not processed; retry after the "
                "Retry-After delay"
            )
        out = preprocess(data)
        if large:  # a thread writes one dict entry: a lost update costs nothing
            seconds = time.perf_counter() - started
            self._s_per_pixel[header.format] = 0.7 * rate + 0.3 * seconds / header.pixels
        return out
