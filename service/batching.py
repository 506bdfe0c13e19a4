"""The queue in front of the device: jobs, their deadlines, and taking the next batch.

Owns :class:`Job` (one input waiting for the device, and the future its caller awaits),
:class:`GateResult` (what the caller gets back) and :class:`JobQueue`: arrival order, the count of
waiting jobs, waiting a little for a batch to fill, and taking up to N jobs that can still start
in time; and the types the gate is built from (:class:`BatchFn`, :class:`GateStats`). It never
runs a model: :mod:`service.gate` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from emojinet.backends import OutputRow, Outputs
from emojinet.gpu_decode import EncodedJpeg

__all__ = ["BatchFn", "Deferred", "GateResult", "GateStats", "Job", "JobQueue", "JobState", "Stack"]
__all__ += ["NotMade", "forward", "stack_arrays"]

Array = npt.NDArray[np.float32]
# A preprocessed input: an array, or a JPEG the model's device decodes (emojinet.gpu_decode).
Input = Array | EncodedJpeg
Stack = Callable[[list[Input]], Any]  # inputs → one batch for predict


def stack_arrays(xs: list[Input]) -> Any:
    return np.stack(xs)  # type: ignore[arg-type]  # only arrays unless ``stack`` is given


class BatchFn(Protocol):
    """One forward pass over a stacked batch, like :meth:`Predictor.run_batch`."""

    def __call__(self, batch: Any, *, features: bool = False) -> Outputs:
        """(N, *input_shape) → N rows; features only when asked for."""
        ...


@dataclass
class GateStats:  # counters for tests and the benchmark
    forward_passes: int = 0
    jobs_run: int = 0
    overloaded: int = 0
    expired: int = 0
    failed_batches: int = 0
    max_concurrent_passes: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)  # passes by size (bounded)


@dataclass(eq=False)
class Deferred:
    """An input made in the device's thread just before its pass (:meth:`DeviceGate.run_made`)."""

    make: Callable[[], Input]
    made_at: float = 0.0  # time.perf_counter() when ``make`` returned


@dataclass(frozen=True)
class GateResult:
    """One job's share of a forward pass, and how it got there."""

    output: OutputRow  # (V,) probabilities, and (D,) features when the job asked for them
    queue_s: float  # arrival in the queue → its batch started
    inference_s: float  # the forward pass that produced the row
    batch_size: int


JobState = Literal["waiting", "running", "done", "expired", "cancelled"]


@dataclass(eq=False)
class Job:
    """One input on its way to the device."""

    x: Input | Deferred  # the preprocessed input, e.g. (3, H, W)
    arrived: float  # time.perf_counter()
    deadline: float  # not started by then: dropped
    future: asyncio.Future[GateResult]
    features: bool = False  # its caller needs the backbone features too
    state: JobState = "waiting"

    def finish(self, result: GateResult | None = None, exc: BaseException | None = None) -> None:
        """Hand the caller its result or error (unless it went away)."""
        self.state = "done"
        if self.future.done():
            return
        if exc is not None:
            self.future.set_exception(exc)
        else:
            assert result is not None
            self.future.set_result(result)

    def settle(self) -> None:
        """Its caller is done with it: an error marked retrieved (no "never retrieved" log), a
        result still to come discarded."""
        if self.future.done() and not self.future.cancelled():
            self.future.exception()
        self.future.cancel()  # no-op for finished ones; a running one's row is discarded


class NotMade(Exception):
    """A deferred input's ``make`` failed (a bad photo, say): the pass never started."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def made(x: Input | Deferred) -> Input:
    """``x``, or the input a deferred ``x`` makes (its failure raised as :class:`NotMade`)."""
    if not isinstance(x, Deferred):
        return x
    try:
        out = x.make()
    except Exception as exc:
        raise NotMade(exc) from exc
    x.made_at = time.perf_counter()
    return out


def forward(predict: BatchFn, stack: Stack, xs: list[Input | Deferred], features: bool) -> Outputs:
    """Stack and run one batch (in the device thread, never on the event loop)."""
    out = predict(stack([made(x) for x in xs]), features=features)
    if len(out) != len(xs):
        raise RuntimeError(f"the model returned {len(out)} rows for a batch of {len(xs)}")
    return out


class JobQueue:
    """Waiting jobs in arrival order.

    Args:
        on_depth: told the number of waiting jobs whenever it changes.
    """

    def __init__(self, on_depth: Callable[[int], None]) -> None:
        self._jobs: deque[Job] = deque()
        self._on_depth = on_depth
        self.waiting = 0
        self.arrived = asyncio.Event()  # set while jobs may be waiting

    def put(self, jobs: Iterable[Job]) -> None:
        jobs = list(jobs)
        self._jobs.extend(jobs)
        self.waiting += len(jobs)
        self.arrived.set()
        self._on_depth(self.waiting)

    def drop(self, job: Job, state: JobState) -> None:
        """Take a waiting job out (it expired or its caller left); it will never run."""
        job.state = state
        self.waiting -= 1
        self._on_depth(self.waiting)

    def pop_waiting(self) -> list[Job]:
        """Empty the queue: the jobs that were still waiting, each dropped as cancelled."""
        out = []
        while self._jobs:
            job = self._jobs.popleft()
            if job.state == "waiting":
                self.drop(job, "cancelled")
                out.append(job)
        return out

    async def fill(self, size: int, delay: float) -> None:
        """Wait up to ``delay`` seconds for ``size`` jobs to be waiting."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while self.waiting < size and (left := end - loop.time()) > 0:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
        if self.waiting:
            self.arrived.set()

    def take(self, size: int, now: float, expire: Callable[[Job], None]) -> list[Job]:
        """Up to ``size`` waiting jobs, oldest first; ``expire`` gets those past their deadline."""
        jobs: list[Job] = []
        while self._jobs and len(jobs) < size:
            job = self._jobs.popleft()
            if job.state != "waiting":
                continue
            if now > job.deadline:
                expire(job)
                continue
            self.waiting -= 1
            job.state = "running"
            jobs.append(job)
        if not self._jobs:
            self.arrived.clear()
        self._on_depth(self.waiting)
        return jobs
