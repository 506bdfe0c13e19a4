"""The decode stage: image decoding in a thread pool, fairly between requests, under the deadline.

At most ``workers`` images decode at once. The others wait, and a free slot goes to the requests
in turn (round-robin), so one request with 16 large images cannot make a small photo sent just
after it wait for all 16. The queue deadline counts from the moment a request's body is in, so
it covers waiting for a slot, decoding and waiting for the device. Work that cannot be done in
time is refused before it costs anything (:class:`~service.refusals.DeadlineExceeded`, 503):

- a request whose images, read from their headers and priced at the per-pixel cost measured so
  far for their format, would finish decoding after the deadline given the work ahead of them;
- an image that could not start decoding by the deadline;
- a large image (1 MP or more) whose decode would end after the deadline, when other images
  are waiting for its slot (otherwise the device gate would throw its work away).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from emojinet.errors import ImageTooLargeError, InvalidImageError
from emojinet.preprocess import ImageHeader, probe_image, read_header
from service.batching import Input
from service.drain import Drain
from service.refusals import DeadlineExceeded, GateObserver, ShuttingDown

__all__ = ["DecodeStage"]

Array = npt.NDArray[np.float32]
Preprocess = Callable[[bytes], Input]
T = TypeVar("T")

_LARGE = 1_000_000  # pixels; smaller images are cheap enough to always try once started
# Optimistic on purpose (a 40 MP PNG takes 0.7-0.8 s on the 2-core dev machine): a cost that is
# too high would refuse the decodes that would correct it. A measured cost relaxes back towards
# it with this half-life, so a cost measured on a briefly overloaded machine is tried again.
_PRIOR_S_PER_PIXEL = 12e-9
_HALF_LIFE_S = 10.0


def _too_late(finish_in: float, deadline_in: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the server is busy: decoding this request's images would end about {finish_in:.1f} s "
        f"from now, after its {deadline_in:.1f} s queue deadline, so nothing was decoded; retry "
        "after the Retry-After delay"
    )


class _FairSlots:
    """``workers`` slots handed out round-robin between requests (each a ``key``).

    Each waiter carries its predicted cost, so :meth:`round_s` can tell how much work one turn
    of the round-robin holds.
    """

    def __init__(self, workers: int) -> None:
        self.free = workers
        self._waiting: OrderedDict[int, deque[tuple[asyncio.Future[None], float]]] = OrderedDict()

    def round_s(self) -> float:
        """Predicted seconds of the next image of every request waiting for a slot."""
        return sum(queue[0][1] for queue in self._waiting.values())

    async def acquire(self, key: int, cost_s: float) -> None:
        if self.free and not self._waiting:
            self.free -= 1
            return
        got: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (got, cost_s)
        self._waiting.setdefault(key, deque()).append(entry)
        try:
            await got
        except BaseException:
            if got.done() and not got.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            else:
                queue = self._waiting.get(key)
                if queue is not None and entry in queue:
                    queue.remove(entry)
                    if not queue:
                        del self._waiting[key]
            raise

    def release(self) -> None:
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            got, _ = queue.popleft()
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
        self.workers = workers
        self.max_pixels = max_pixels
        self.expected_device_wait_s = expected_device_wait_s
        self.observers = list(observers)
        self.waiting = 0  # images waiting for a slot
        self._running_ends: dict[int, float] = {}  # image → predicted end of its decode
        self._measured: dict[str, tuple[float, float]] = {}  # format → (s per pixel, when)

    @property
    def running(self) -> int:
        """Images decoding now."""
        return len(self._running_ends)

    def cost_s(self, header: ImageHeader) -> float:
        """Predicted seconds to decode an image, from its header."""
        return header.pixels * self._s_per_pixel(header.format)

    def _s_per_pixel(self, fmt: str) -> float:
        rate, when = self._measured.get(fmt, (_PRIOR_S_PER_PIXEL, 0.0))
        weight: float = 0.5 ** ((time.perf_counter() - when) / _HALF_LIFE_S)
        return _PRIOR_S_PER_PIXEL + (rate - _PRIOR_S_PER_PIXEL) * weight

    def _learn(self, fmt: str, s_per_pixel: float) -> None:
        """From a worker thread: one dict entry written at once (a lost update costs nothing)."""
        rate = 0.7 * self._s_per_pixel(fmt) + 0.3 * s_per_pixel
        self._measured[fmt] = (rate, time.perf_counter())

    async def decode_all(
        self, preprocess: Preprocess, images: Sequence[bytes], deadline: float, *, multi: bool
    ) -> list[Input]:
        """Decode every image (in parallel up to ``workers``); the first failure cancels the rest.

        Errors about one image of several name it (``images[2]: ...``).
        """
        if not multi and self._slots.free and not self.waiting:  # a slot now: no turn to wait
            return [await self._decode_now(preprocess, images[0], deadline, check=not self.idle())]
        headers = self._probe_all(images, multi, quick=True)  # on the loop: microseconds
        if headers is None:  # a header only Pillow reads: in a thread, it may take milliseconds
            headers = await asyncio.to_thread(self._probe_all, images, multi)
        assert headers is not None
        costs = [self.cost_s(h) for h in headers]
        self._check_in_time(costs, deadline)
        key = next(self._keys)
        if not multi:  # one image: decoded in this task (no task of its own to wait for)
            return [await self._decode(preprocess, images[0], headers[0], costs[0], deadline, key)]
        tasks = [
            asyncio.ensure_future(self._decode(preprocess, data, h, c, deadline, key))
            for data, h, c in zip(images, headers, costs, strict=True)
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # no-op for finished ones; waiting ones never start
        for i, task in enumerate(tasks):
            exc = task.exception() if task.done() and not task.cancelled() else None
            if isinstance(exc, (InvalidImageError, ImageTooLargeError)) and multi:
                raise type(exc)(f"images[{i}]: {exc}") from exc
            if exc is not None:
                raise exc
        return [t.result() for t in tasks]

    def _probe_all(
        self, images: Sequence[bytes], multi: bool, *, quick: bool = False
    ) -> list[ImageHeader] | None:
        """Every header, by Pillow (:func:`probe_image`); with ``quick``, only from headers short
        enough to read in microseconds (:func:`read_header`), or None if one is not."""
        headers = []
        for i, data in enumerate(images):
            try:
                header = (
                    read_header(data, max_pixels=self.max_pixels)
                    if quick
                    else probe_image(data, max_pixels=self.max_pixels)
                )
            except (InvalidImageError, ImageTooLargeError) as exc:
                if multi:
                    raise type(exc)(f"images[{i}]: {exc}") from exc
                raise
            if header is None:
                return None
            headers.append(header)
        return headers

    def _check_in_time(self, costs: list[float], deadline: float) -> None:
        """503 now if the work ahead (what runs, and one round of the others) and this request's
        cannot be done by the deadline. An idle stage always tries: nothing else would wait."""
        now = time.perf_counter()
        running_s = sum(max(0.0, end - now) for end in self._running_ends.values())
        queued_s = self._slots.round_s()
        if not (running_s or queued_s):
            return
        slot_wait = 0.0 if self._slots.free and not queued_s else running_s + queued_s
        own = sum(costs) / min(len(costs), self.workers)
        finish = now + slot_wait / self.workers + own + self.expected_device_wait_s()
        if finish <= deadline:
            return
        self._dropped()
        raise _too_late(finish - now, deadline - now)

    async def _decode(
        self,
        preprocess: Preprocess,
        data: bytes,
        header: ImageHeader,
        cost_s: float,
        deadline: float,
        key: int,
    ) -> Input:
        """One image of request ``key``; ``deadline`` is a ``time.perf_counter()`` value."""
        self.waiting += 1
        try:
            async with self._drain.cuttable(max(deadline - time.perf_counter(), 0.0)):
                await self._slots.acquire(key, cost_s)
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
        wait_s = self.expected_device_wait_s()
        job = functools.partial(self._run, preprocess, data, header, deadline, wait_s)
        return await self._submit(job, cost_s)

    def idle(self) -> bool:
        """Nothing decoding or waiting to: a request's images need no turn or deadline check."""
        return not (self._running_ends or self.waiting) and self._slots.free > 0

    async def _decode_now(
        self, preprocess: Preprocess, data: bytes, deadline: float, *, check: bool
    ) -> Input:
        """One image with a slot free for it: its header read and checked in the same job as
        its decoding (one hand-off to a thread instead of two). ``check``: refuse it there, before
        decoding, if it would miss the deadline (an idle stage always tries)."""
        await self._slots.acquire(-1, 0.0)  # free, and nobody waits: taken at once
        token = next(self._keys)
        job = functools.partial(self._probe_and_run, preprocess, data, deadline, token, check)
        return await self._submit(job, 0.0, token)

    async def decode_in(
        self,
        run: Callable[[Callable[[], Input]], Awaitable[T]],
        preprocess: Preprocess,
        data: bytes,
        deadline: float,
    ) -> T:
        """:meth:`_decode_now`, the job handed to ``run`` to run in a thread of its own (the
        model's lane: decoding and the pass in one hand-off); ``run``'s result is returned. The
        job gives the slot back when the image is decoded; if it never starts, this does."""
        await self._slots.acquire(-1, 0.0)  # (idle: see :meth:`idle`)
        token = next(self._keys)
        self._running_ends[token] = time.perf_counter()
        loop, guard, started = asyncio.get_running_loop(), threading.Lock(), [False]

        def job() -> Input:
            with guard:
                if token not in self._running_ends:
                    raise ShuttingDown("the request ended before its image was decoded")
                started[0] = True
            try:
                return self._probe_and_run(preprocess, data, deadline, token)
            finally:
                loop.call_soon_threadsafe(self._free, token, None)

        try:
            return await run(job)
        except DeadlineExceeded:
            self._dropped()
            raise
        finally:
            with guard:
                if not started[0] and token in self._running_ends:
                    self._free(token, None)

    def _probe_and_run(
        self, preprocess: Preprocess, data: bytes, deadline: float, token: int, check: bool = False
    ) -> Input:
        """In a worker thread: the header read and checked (and with ``check`` the deadline, as
        :meth:`_check_in_time` does for a slot free at once), then :meth:`_run`."""
        header = read_header(data, max_pixels=self.max_pixels) or probe_image(
            data, max_pixels=self.max_pixels
        )
        now, cost = time.perf_counter(), self.cost_s(header)
        # Its predicted end, for the requests arriving meanwhile (an existing key: the loop may
        # read the dict, its size does not change).
        self._running_ends[token] = now + cost
        wait = self.expected_device_wait_s() if check else 0.0
        if check and now + cost + wait > deadline:
            raise _too_late(cost + wait, deadline - now)
        return self._run(preprocess, data, header, deadline, wait)

    async def _submit(
        self, job: Callable[[], Input], cost_s: float, token: int | None = None
    ) -> Input:
        """Run ``job`` in the executor on the slot the caller took; it is freed when it ends."""
        token = next(self._keys) if token is None else token
        self._running_ends[token] = time.perf_counter() + cost_s
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        except BaseException:
            self._free(token, None)
            raise
        # The slot stays taken until the thread is done, even if this request is cancelled.
        future.add_done_callback(functools.partial(self._free, token))
        try:
            return await asyncio.shield(future)
        except DeadlineExceeded:
            self._dropped()
            raise

    def _free(self, token: int, future: asyncio.Future[Input] | None) -> None:
        if future is not None and not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" log if the caller left
        del self._running_ends[token]
        self._slots.release()

    def _dropped(self) -> None:
        for obs in self.observers:
            obs.rejected("deadline")

    def _run(
        self, preprocess: Preprocess, data: bytes, header: ImageHeader, deadline: float, wait: float
    ) -> Input:
        """In a worker thread: skip hopeless work, decode, learn the cost."""
        large = header.pixels >= _LARGE
        started = time.perf_counter()
        # Skip work that would come too late, when others are waiting to use this slot.
        cost = self.cost_s(header) + wait if large and self.waiting else 0.0
        if started + cost > deadline:
            raise DeadlineExceeded(
                f"the server is busy: the {header.width}x{header.height} image would not be "
                "decoded before the queue deadline, so it was not processed; retry after the "
                "Retry-After delay"
            )
        out = preprocess(data)
        if large:
            self._learn(header.format, (time.perf_counter() - started) / header.pixels)
        return out
