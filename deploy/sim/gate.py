"""``DeviceGate``'s policy on a SimPy clock: the bounded queue, batching, lanes and the deadline.

Mirrors :class:`service.gate.DeviceGate` step by step (``tests/test_simulate.py`` drives both
with the same arrivals and compares the batches and refusals):

- admission: :meth:`SimGate.check_admission` refuses when ``waiting + n > max_queue`` (429);
- the batcher waits for a job, takes a lane, then, if fewer than ``max_batch`` wait and inputs
  are on their way (``incoming``), waits up to ``batch_delay_s`` for the batch to fill, and takes
  up to ``max_batch`` waiting jobs oldest first, expiring those past their deadline;
- a job not started by its deadline is expired then (503), whether or not the batcher looks;
- a pass with the device to itself (no other pass, nothing waiting or incoming) is "alone".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import simpy

__all__ = ["SimGate", "SimJob"]

State = Literal["waiting", "running", "done", "expired"]
Proc = Generator[simpy.Event, Any, Any]


@dataclass(eq=False)
class SimJob:
    """One input waiting for the device; ``finished`` fires when it ran or expired."""

    rid: int
    arrived: float
    deadline: float
    finished: simpy.Event
    state: State = "waiting"
    started: float = 0.0
    batch: int = -1  # index of the forward pass that ran it


@dataclass
class SimGateStats:
    batches: list[list[int]] = field(default_factory=list)  # request ids per forward pass
    expired: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # queue wait of every job that ran


class SimGate:
    """The device gate's policy; ``pass_s(batch, alone)`` is how long a forward pass takes.

    ``run_pass(seconds, alone)`` (optional) replaces the plain timeout of a pass, e.g. to hold
    host cores while it runs.
    """

    def __init__(
        self,
        env: simpy.Environment,
        pass_s: Callable[[int, bool], float],
        *,
        max_batch: int,
        batch_delay_s: float,
        max_queue: int,
        deadline_s: float,
        lanes: int = 1,
        incoming: Callable[[], int] | None = None,
        run_pass: Callable[[float, bool], Proc] | None = None,
    ) -> None:
        self.env = env
        self.pass_s = pass_s
        self.max_batch = max_batch
        self.batch_delay_s = batch_delay_s
        self.max_queue = max_queue
        self.deadline_s = deadline_s
        self.lanes = simpy.Resource(env, lanes)
        self.incoming = incoming
        self.run_pass = run_pass
        self.stats = SimGateStats()
        self.waiting = 0
        self.running = 0
        self.passes_in_flight = 0
        self._jobs: deque[SimJob] = deque()
        self._arrived = env.event()
        env.process(self._batcher())

    def check_admission(self, n: int = 1) -> bool:
        """True if ``n`` more jobs fit in the queue (the gate's own 429 rule)."""
        return self.waiting + n <= self.max_queue

    def submit(self, rid: int, deadline: float | None = None) -> SimJob:
        """Queue one job (admission already checked); wait on ``job.finished``."""
        now = self.env.now
        end = now + self.deadline_s if deadline is None else deadline
        job = SimJob(rid, now, end, self.env.event())
        self._jobs.append(job)
        self.waiting += 1
        if not self._arrived.triggered:
            self._arrived.succeed()
        self.env.process(self._watch(job))
        return job

    def _watch(self, job: SimJob) -> Proc:
        """Expire the job at its deadline if it has not started (the caller's timer)."""
        yield self.env.timeout(max(job.deadline - self.env.now, 0.0))
        if job.state == "waiting":
            self._expire(job)

    def _expire(self, job: SimJob) -> None:
        job.state = "expired"
        self.waiting -= 1
        self.stats.expired.append(job.rid)
        job.finished.succeed()

    def _batcher(self) -> Proc:
        while True:
            if not self._jobs:
                self._arrived = self.env.event()
                yield self._arrived
            lane = self.lanes.request()
            yield lane
            jobs = yield from self._collect()
            if not jobs:
                self.lanes.release(lane)
                continue
            busy = self.passes_in_flight or self.waiting
            alone = not (busy or (self.incoming is not None and self.incoming()))
            self.running += len(jobs)
            self.passes_in_flight += 1
            self.env.process(self._one_batch(jobs, alone, lane))

    def _collect(self) -> Generator[simpy.Event, Any, list[SimJob]]:
        more_coming = self.incoming is None or self.incoming() > 0
        if self.batch_delay_s > 0 and self.waiting < self.max_batch and more_coming:
            end = self.env.now + self.batch_delay_s
            while self.waiting < self.max_batch and end - self.env.now > 1e-12:
                self._arrived = self.env.event()
                yield self._arrived | self.env.timeout(end - self.env.now)
        now = self.env.now
        jobs: list[SimJob] = []
        while self._jobs and len(jobs) < self.max_batch:
            job = self._jobs.popleft()
            if job.state != "waiting":
                continue
            if now > job.deadline:
                self._expire(job)
                continue
            self.waiting -= 1
            job.state = "running"
            job.started = now
            jobs.append(job)
        return jobs

    def _one_batch(
        self, jobs: list[SimJob], alone: bool, lane: simpy.resources.resource.Request
    ) -> Proc:
        index = len(self.stats.batches)
        self.stats.batches.append([j.rid for j in jobs])
        seconds = self.pass_s(len(jobs), alone)
        if self.run_pass is None:
            yield self.env.timeout(seconds)
        else:
            yield from self.run_pass(seconds, alone)
        self.passes_in_flight -= 1
        self.running -= len(jobs)
        self.lanes.release(lane)
        for job in jobs:
            job.state = "done"
            job.batch = index
            self.stats.waits.append(job.started - job.arrived)
            job.finished.succeed()
