"""The device gate: one lock on the device, a bounded queue in front of it, batching behind it.

Owns :class:`DeviceGate`: admission to the queue, the batcher task, the forward passes and their
failures (queue, jobs, results: :mod:`service.batching`). Callers hand it *jobs* (an input each,
and whether they need the backbone features). A batcher task takes the device lock, collects up
to ``max_batch_size`` waiting jobs (up to ``max_batch_delay_s`` for more), stacks them and runs
one pass in a dedicated thread, then hands each caller its :class:`~emojinet.backends.OutputRow`.
On a CPU the lock has a permit per core (``lanes``), each pass on one thread (faster than one
pass on every core: ``benchmarks/bench_serve.py``); a GPU has one lane. A request alone on the
server is decoded and run in one lane job (:meth:`DeviceGate.run_made`).

Backpressure: when ``max_queue`` jobs are already waiting, :meth:`DeviceGate.submit_many` raises
:class:`Overloaded` at once (:class:`TooManyInputs` when they could never fit). A job not started
by its deadline (``queue_deadline_s`` after it arrived, or the caller's own, which may count
decoding too) is never run; its caller gets :class:`DeadlineExceeded`. A forward pass that
raises is retried one job at a time, so a single bad input fails alone and the others in its
batch still get their rows; the batcher itself never dies of an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from emojinet.backends import Outputs
from service import batching
from service.batching import BatchFn, Deferred, GateResult, GateStats, Input, Job, JobQueue
from service.refusals import DeadlineExceeded, GateError, GateObserver, Overloaded, TooManyInputs

__all__ = ["BatchFn", "DeadlineExceeded", "DeviceGate", "GateError", "GateObserver", "GateResult"]
__all__ += ["GateStats", "Overloaded", "TooManyInputs"]

log = logging.getLogger(__name__)


class DeviceGate:
    """Serialises model calls behind a lock with ``lanes`` permits and batches waiting jobs.

    Args:
        predict: one forward pass, ``(N, ...) → Outputs``; runs in ``executor``.
        max_batch_size: the most jobs in one forward pass.
        max_batch_delay_s: how long a batch may wait to fill up once the device is free
            (0: take whatever is waiting).
        max_queue: the most jobs waiting at once; more are refused with :class:`Overloaded`.
        queue_deadline_s: a job waiting longer is dropped with :class:`DeadlineExceeded`.
        observers: receive queue waits, batch sizes, depth and rejections.
        executor: runs forward passes; by default ``lanes`` dedicated threads.
        lanes: how many forward passes may run at once (1: one lock on the device).
        predict_alone: the pass for a batch that has the server to itself (no other lane busy,
            nothing waiting or decoding, nothing else ``held``): on a CPU one that may use every
            core, which a request being received or answered would wait for. Default: ``predict``.
        incoming: how many inputs are on their way to the queue (being decoded); the batch
            delay is only waited while some are. None: unknown, always wait.
        held: how many inputs the server holds, each from its request's headers to its answer.
        stack: makes one batch of the inputs, in the lane (default ``np.stack``).
    """

    def __init__(
        self,
        predict: BatchFn,
        *,
        max_batch_size: int = 32,
        max_batch_delay_s: float = 0.0,
        max_queue: int = 256,
        queue_deadline_s: float = 1.0,
        observers: Sequence[GateObserver] = (),
        executor: Executor | None = None,
        lanes: int = 1,
        predict_alone: BatchFn | None = None,
        incoming: Callable[[], int] | None = None,
        held: Callable[[], int] | None = None,
        stack: batching.Stack | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or lanes < 1:
            raise ValueError("max_batch_size, max_queue and lanes must be at least 1")
        if queue_deadline_s <= 0 or max_batch_delay_s < 0:
            raise ValueError("queue_deadline_s must be > 0 and max_batch_delay_s >= 0")
        self.predict = predict
        self.predict_alone = predict_alone
        self.incoming, self.held = incoming, held
        self.stack = stack or batching.stack_arrays
        self.max_batch_size = max_batch_size
        self.max_batch_delay_s = max_batch_delay_s
        self.max_queue = max_queue
        self.queue_deadline_s = queue_deadline_s
        self.observers = list(observers)
        self.lanes = lanes
        self.lock = asyncio.Semaphore(lanes)  # a permit held for every use of the device
        self.stats = GateStats()
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(lanes, thread_name_prefix="device")
        self._batches: set[asyncio.Task[None]] = set()  # running in the lanes
        self._queue = JobQueue(on_depth=lambda depth: self._notify("depth", depth))
        self._running = 0  # jobs in the batches on the device now
        self._callers = 0  # submit() calls not yet returned (their answers may still be in flight)
        self._passes_in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._ewma_batch_s = 0.0
        self._closed: Callable[[], GateError] | None = None  # set by shed(): refuse new jobs

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batcher task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._batcher(), name="batcher")

    async def drain(self, timeout: float) -> bool:
        """Wait until no job waits or runs and every caller has its answer; False if
        ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self._queue.waiting or self._running or self._callers:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    def shed(self, error: Callable[[], GateError]) -> None:
        """Fail every waiting job, and every later one at once, with ``error()``.

        The batch on the device now still finishes (shutdown: what is running gets its answer).
        """
        self._closed = error
        for job in self._queue.pop_waiting():
            if not job.future.done():
                job.future.set_exception(error())

    async def stop(self) -> None:
        """Stop the batcher; jobs still waiting fail with :class:`GateError`."""
        for task in [self._task, *self._batches]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.shed(lambda: GateError("the server stopped before this ran"))
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the request side ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs waiting for the device (not counting the batch running now)."""
        return self._queue.waiting

    @property
    def in_flight(self) -> int:
        """Jobs in the batches on the device now."""
        return self._running

    def retry_after_s(self) -> int:
        """A rough number of seconds until the queue has room again (at least 1)."""
        batches = self._queue.waiting / (self.max_batch_size * self.lanes) + 1
        return max(1, math.ceil(batches * self._ewma_batch_s))

    def expected_wait_s(self) -> float:
        """A rough time until a job queued now would start (0 when the device is idle)."""
        if not (self._queue.waiting or self._running):
            return 0.0
        return (self._queue.waiting // (self.max_batch_size * self.lanes) + 1) * self._ewma_batch_s

    def check_admission(self, n: int = 1) -> None:
        """Raise :class:`Overloaded` now if ``n`` more jobs would not fit (cheap, no I/O).

        Raises:
            TooManyInputs: ``n`` is over ``max_queue``: it could never fit.
        """
        if n > self.max_queue:
            raise TooManyInputs(
                f"{n} inputs in one request exceed the queue size {self.max_queue}: "
                f"send at most {self.max_queue} per request"
            )
        waiting = self._queue.waiting
        if waiting + n > self.max_queue:
            self.stats.overloaded += 1
            self._notify("rejected", "overloaded")
            raise Overloaded(
                f"the server is busy: {waiting} inputs are already waiting for the model "
                f"(limit {self.max_queue}); retry after the Retry-After delay",
                self.retry_after_s(),
            )

    async def submit(self, x: Input, *, features: bool = False) -> GateResult:
        """Run one job; see :meth:`submit_many`."""
        (result,) = await self.submit_many([x], features=features)
        return result

    async def submit_many(
        self, xs: Sequence[Input], *, deadline: float | None = None, features: bool = False
    ) -> list[GateResult]:
        """Queue ``xs`` together (all admitted or none) and return their rows in order.

        ``deadline`` (a ``time.perf_counter()`` value) replaces arrival + ``queue_deadline_s``
        as the time by which each job must start, so a caller can count its own earlier work.
        ``features``: the rows must carry the backbone features too.

        Raises:
            Overloaded: the queue has no room for all of them (nothing was queued).
            DeadlineExceeded: one of them waited past the deadline (none of the rest run).
            Exception: whatever the forward pass raised for this job.
        """
        if self._closed is not None:
            raise self._closed()
        if self._task is None or self._task.done():
            raise RuntimeError("the device gate is not running; call start() first")
        if not xs:
            return []
        self.check_admission(len(xs))
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        end = now + self.queue_deadline_s if deadline is None else deadline
        jobs = [Job(x, now, end, loop.create_future(), features) for x in xs]
        self._queue.put(jobs)
        self._callers += 1
        try:
            return [await self._result(job) for job in jobs]
        finally:
            self._callers -= 1
            for job in jobs:  # on error or cancellation: the waiting ones never run
                if job.state == "waiting":
                    self._queue.drop(job, "cancelled")
                job.settle()

    def idle_for(self, n: int) -> bool:
        """Nothing waits or runs on the device, a lane is free, and the server holds no inputs
        but the caller's ``n``: :meth:`run_made` may be used."""
        return (
            self._closed is None
            and self._task is not None
            and not self._task.done()
            and not (self._queue.waiting or self._running or self.lock.locked())
            and (self.held is None or self.held() <= n)
        )

    async def run_made(self, make: Callable[[], Input], *, features: bool = False) -> GateResult:
        """One input made by ``make`` (decoded, say) and run at once in one lane job, with
        :attr:`predict_alone`: one hand-off to a thread, not two, for a lone request (only when
        :meth:`idle_for` says so). What ``make`` raises is raised here, and is no pass."""
        if not self.idle_for(1):
            raise RuntimeError("run_made needs an idle gate: check idle_for() first")
        await self.lock.acquire()  # a free permit: taken without waiting
        future = asyncio.get_running_loop().create_future()
        job = Job(Deferred(make), time.perf_counter(), math.inf, future, features, "running")
        self._notify("queue_wait", 0.0, ran=True)
        self._launch([job], alone=True)
        self._callers += 1
        try:
            return await job.future
        finally:
            self._callers -= 1
            job.settle()

    def _launch(self, jobs: list[Job], alone: bool) -> None:
        """Run ``jobs`` as one batch in the lane whose permit the caller took."""
        self._running += len(jobs)
        task = asyncio.get_running_loop().create_task(self._one_batch(jobs, alone), name="batch")
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _result(self, job: Job) -> GateResult:
        """The row; DeadlineExceeded if still waiting at its deadline (running ones finish)."""
        if job.state != "waiting":
            return await job.future
        left = max(job.deadline - time.perf_counter(), 0.0)
        timer = asyncio.get_running_loop().call_later(left, self._expire, job)
        try:
            return await job.future
        finally:
            timer.cancel()

    # -- the batcher ------------------------------------------------------------------------------

    async def _batcher(self) -> None:
        """Take a free lane, collect a batch, run it in the lane; again (no await on the run)."""
        while True:
            await self._queue.arrived.wait()
            await self.lock.acquire()
            try:
                jobs = await self._collect()
            except asyncio.CancelledError:
                self.lock.release()
                raise
            except Exception:  # a bug here must not stop the service
                self.lock.release()
                log.exception("device gate: unexpected error in the batcher; continuing")
                continue
            if not jobs:
                self.lock.release()
                continue
            busy = self._passes_in_flight or self._queue.waiting
            others = self.held() > len(jobs) if self.held else False
            alone = not (busy or others or (self.incoming and self.incoming()))
            self._launch(jobs, alone)

    async def _collect(self) -> list[Job]:
        """The jobs of the next batch (after waiting up to the batch delay for more)."""
        more_coming = self.incoming is None or self.incoming() > 0
        if self.max_batch_delay_s > 0 and self._queue.waiting < self.max_batch_size and more_coming:
            await self._queue.fill(self.max_batch_size, self.max_batch_delay_s)
        now = time.perf_counter()
        jobs = self._queue.take(self.max_batch_size, now, self._expire)
        for job in jobs:
            self._notify("queue_wait", now - job.arrived, ran=True)
        return jobs

    async def _one_batch(self, jobs: list[Job], alone: bool) -> None:
        """Run ``jobs`` in the lane the batcher took for them, then free the lane."""
        try:
            await self._run(jobs, alone)
        except Exception:  # a bug here must not stop the service
            log.exception("device gate: unexpected error running a batch; continuing")
        finally:
            self._running -= len(jobs)
            self.lock.release()
            for job in jobs:  # never leave a caller hanging
                job.finish(exc=RuntimeError("the batch ended without a result"))

    async def _run(self, jobs: list[Job], alone: bool = False) -> None:
        started = time.perf_counter()
        try:
            out = await self._pass([j.x for j in jobs], any(j.features for j in jobs), alone)
        except batching.NotMade as exc:  # a deferred job's input could not be made: no pass ran
            jobs[0].finish(exc=exc.error)
            return
        except Exception as exc:
            self.stats.failed_batches += 1
            self._notify("batch", len(jobs), time.perf_counter() - started, ok=False)
            if len(jobs) == 1:
                jobs[0].finish(exc=exc)
                return
            log.warning("a batch of %d failed (%r); retrying its jobs one by one", len(jobs), exc)
            for job in jobs:
                t0 = time.perf_counter()
                try:
                    one = await self._pass([job.x], job.features)
                except Exception as one_exc:
                    job.finish(exc=one_exc)
                else:
                    row = one.rows()[0]
                    job.finish(GateResult(row, started - job.arrived, time.perf_counter() - t0, 1))
            return
        for job in jobs:  # a deferred job reaches the device when its input is made
            if isinstance(job.x, Deferred):
                started = job.arrived = max(started, job.x.made_at)
        seconds = time.perf_counter() - started
        self._ewma_batch_s = (
            seconds if not self._ewma_batch_s else 0.8 * self._ewma_batch_s + 0.2 * seconds
        )
        self.stats.jobs_run += len(jobs)
        self._notify("batch", len(jobs), seconds, ok=True)
        for job, row in zip(jobs, out.rows(), strict=True):
            job.finish(GateResult(row, started - job.arrived, seconds, len(jobs)))

    async def _pass(
        self, xs: list[Input | Deferred], features: bool, alone: bool = False
    ) -> Outputs:
        self._passes_in_flight += 1
        stats = self.stats
        stats.max_concurrent_passes = max(stats.max_concurrent_passes, self._passes_in_flight)
        try:
            fn = (self.predict_alone or self.predict) if alone else self.predict
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, batching.forward, fn, self.stack, xs, features
            )
        except batching.NotMade:
            xs = []  # its input was never made: no pass to count
            raise
        finally:
            self._passes_in_flight -= 1
            if xs:
                stats.forward_passes += 1
                stats.batch_sizes[len(xs)] += 1

    def _expire(self, job: Job) -> None:
        if job.state != "waiting":  # started (or gone) before its deadline timer fired
            return
        waited = time.perf_counter() - job.arrived
        self._queue.drop(job, "expired")
        self.stats.expired += 1
        self._notify("queue_wait", waited, ran=False)
        self._notify("rejected", "deadline")
        if not job.future.done():
            refusal = DeadlineExceeded.in_queue(self.queue_deadline_s, waited, self.retry_after_s())
            job.future.set_exception(refusal)

    def _notify(self, event: str, *args: object, **kwargs: object) -> None:
        for obs in self.observers:
            try:
                getattr(obs, event)(*args, **kwargs)
            except Exception:
                log.exception("gate observer %r failed on %s", obs, event)
