"""One instance, one SimPy process per request: the exact model, for validation and for the fleet.

A request's path mirrors the service's: admission (``max_queue`` images admitted and not yet
answered, else 429, answered ``refusal_delay_s`` after arrival like every refusal), half the
event-loop work (HTTP, multipart, routing), the decode pool (``decode_workers`` threads; an image
that cannot start decoding by the deadline is 503), the gate (:class:`deploy.sim.gate.SimGate`; 503
when it does not start by the deadline, which counts from the body's arrival), then the other half
of the event-loop work (top-k, the answer). The event loop is one thread; on a CPU the stages'
threads share the host's cores (a stage's time is stretched by the threads computing beside it), and
a pass with the device to itself uses them all.

:func:`closed_loop` is wrk's load (N connections, each sending again when answered);
:func:`open_loop` is Poisson arrivals at a rate; :func:`load_table` runs the open loop at a range
of loads, the per-instance figures the fleet model (:mod:`deploy.sim.fleet`) looks up.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from deploy.sim.gate import SimGate
from deploy.sim.service import Profile

__all__ = [
    "ExactInstance",
    "LoadTable",
    "RunResult",
    "SharedCpu",
    "closed_loop",
    "load_table",
    "open_loop",
]

Proc = Generator[simpy.Event, Any, Any]
QUANTILES = np.linspace(0.0, 1.0, 41)[1:-1]  # 2.5 % … 97.5 %: equal-mass points of a latency


@dataclass
class RunResult:
    """Every answer of a run: when its request arrived, how long it took, its status."""

    arrived: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    seconds: float = 0.0
    warmup_s: float = 0.0
    backlog_area: float = 0.0  # ∫ (queued + in flight) dt, for the mean Backlog
    waits: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Answers/s, p50/p99 of every answer (ms), shed share and its causes, after warm-up."""
        arrived = np.asarray(self.arrived)
        keep = arrived >= self.warmup_s
        lat = np.asarray(self.latency)[keep] * 1000
        status = np.asarray(self.status)[keep]
        n = max(1, len(status))
        span = max(self.seconds - self.warmup_s, 1e-9)
        return {
            "answers_per_s": len(status) / span,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else 0.0,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else 0.0,
            "shed": float(np.sum(status != 200)) / n,
            "shed_429": float(np.sum(status == 429)) / n,
            "shed_503": float(np.sum(status == 503)) / n,
        }


class SharedCpu:
    """Processor sharing: the threads computing at once share ``cores`` equally (what the OS
    scheduler does, to a first approximation); each piece of work ends when its CPU is done."""

    def __init__(self, env: simpy.Environment, cores: int) -> None:
        self.env = env
        self.cores = cores
        self._work: list[tuple[list[float], int, simpy.Event]] = []  # ([left], threads, done)
        self._last = 0.0
        self._generation = 0

    def _rate(self) -> float:
        threads = sum(t for _, t, _ in self._work)
        return min(1.0, self.cores / threads) if threads else 1.0

    def _advance(self) -> None:
        elapsed, rate = self.env.now - self._last, self._rate()
        for left, _, _ in self._work:
            left[0] -= elapsed * rate
        self._last = self.env.now

    def work(self, seconds: float, threads: int = 1) -> simpy.Event:
        """An event that fires once each of ``threads`` threads has had ``seconds`` of a core."""
        self._advance()
        done = self.env.event()
        self._work.append(([seconds], threads, done))
        self._reschedule()
        return done

    def _reschedule(self) -> None:
        self._generation += 1
        if not self._work:
            return
        generation = self._generation
        wait = min(left[0] for left, _, _ in self._work) / self._rate()
        timer = self.env.timeout(max(wait, 0.0))
        timer.callbacks.append(lambda _: self._tick(generation))

    def _tick(self, generation: int) -> None:
        if generation != self._generation:
            return  # work was added since: a newer timer stands
        self._advance()
        finished = [w for w in self._work if w[0][0] <= 1e-12]
        self._work = [w for w in self._work if w[0][0] > 1e-12]
        for _, _, done in finished:
            done.succeed()
        self._reschedule()


class ExactInstance:
    """One server: admission, event loop, decode pool, gate; records every answer."""

    def __init__(self, env: simpy.Environment, profile: Profile, seed: int = 0) -> None:
        self.env = env
        self.p = profile
        self.rng = np.random.default_rng(seed)
        self.admitted = 0
        self.decoding = 0
        self.loop = simpy.Resource(env, 1)
        self.decoders = simpy.Resource(env, profile.decode_workers)
        self.cpu = SharedCpu(env, profile.cores) if profile.pass_on_cpu else None
        self.result = RunResult()
        self._rid = 0
        self._last_change = 0.0
        self.gate = SimGate(
            env,
            lambda b, alone: profile.pass_s(b, alone=alone) * self._spread(),
            max_batch=profile.max_batch,
            batch_delay_s=profile.batch_delay_s,
            max_queue=profile.max_queue,
            deadline_s=profile.deadline_s,
            lanes=profile.lanes,
            incoming=lambda: self.decoding,
            run_pass=self._run_pass if profile.pass_on_cpu else None,
        )

    def _spread(self) -> float:
        """A lognormal factor of mean 1: how much one piece of work varies (``Profile.spread``)."""
        sigma = self.p.spread
        return float(np.exp(sigma * self.rng.standard_normal() - sigma**2 / 2)) if sigma else 1.0

    def _compute(self, seconds: float, threads: int = 1) -> Proc:
        """``seconds`` of CPU on each of ``threads`` threads (cores shared on a CPU host)."""
        seconds *= self._spread()
        if self.cpu is None:  # a GPU host: a core per thread
            yield self.env.timeout(seconds)
        else:
            yield self.cpu.work(seconds, threads)

    def _run_pass(self, seconds: float, alone: bool) -> Proc:
        yield from self._compute(seconds, self.p.cores if alone else 1)

    def _cpu(self, resource: simpy.Resource, seconds: float) -> Proc:
        with resource.request() as req:
            yield req
            yield from self._compute(seconds)

    def _count(self, delta: int) -> None:
        now = self.env.now
        self.result.backlog_area += self.admitted * (now - self._last_change)
        self._last_change = now
        self.admitted += delta

    def request(self) -> Proc:
        """One ``POST /suggest`` of one image, from arrival to answer."""
        t0 = self.env.now
        rid, self._rid = self._rid, self._rid + 1
        if self.admitted + 1 > self.p.max_queue:
            yield self.env.timeout(self.p.refusal_delay_s)  # the door holds its 429
            self._record(t0, 429)
            return
        self._count(+1)
        yield from self._cpu(self.loop, self.p.loop_s / 2)
        deadline = self.env.now + self.p.deadline_s
        status = yield from self._decode_and_run(rid, deadline)
        if status == 200:
            yield from self._cpu(self.loop, self.p.loop_s / 2)
        self._count(-1)
        if status != 200:  # a refusal is answered no sooner than the delay after arrival
            yield self.env.timeout(max(0.0, t0 + self.p.refusal_delay_s - self.env.now))
        self._record(t0, status)

    def _decode_and_run(self, rid: int, deadline: float) -> Generator[simpy.Event, Any, int]:
        self.decoding += 1
        with self.decoders.request() as slot:
            got = yield slot | self.env.timeout(max(deadline - self.env.now, 0.0))
            if slot not in got or self.env.now + self.p.decode_s > deadline:
                self.decoding -= 1
                return 503
            yield from self._compute(self.p.decode_s)
        self.decoding -= 1
        job = self.gate.submit(rid, deadline)
        yield job.finished
        if job.state == "expired":
            return 503
        self.result.waits.append(job.started - job.arrived)
        return 200

    def _record(self, t0: float, status: int) -> None:
        self.result.arrived.append(t0)
        self.result.latency.append(self.env.now - t0)
        self.result.status.append(status)


def closed_loop(
    profile: Profile, *, clients: int, seconds: float, seed: int = 0, warmup_s: float = 2.0
) -> RunResult:
    """``clients`` connections, each sending its next request as soon as it is answered."""
    env = simpy.Environment()
    inst = ExactInstance(env, profile, seed)
    rng = np.random.default_rng(seed + 1)

    def client() -> Proc:
        yield env.timeout(float(rng.uniform(0, 0.01)))  # connections do not start in lockstep
        while True:
            yield env.process(inst.request())

    for _ in range(clients):
        env.process(client())
    env.run(until=seconds + warmup_s)
    inst.result.seconds, inst.result.warmup_s = seconds + warmup_s, warmup_s
    return inst.result


def open_loop(profile: Profile, *, rate: float, seconds: float, seed: int = 0) -> RunResult:
    """Poisson arrivals at ``rate`` requests/s for ``seconds`` (the first tenth is warm-up)."""
    env = simpy.Environment()
    inst = ExactInstance(env, profile, seed)
    rng = np.random.default_rng(seed + 1)

    def arrivals() -> Proc:
        while True:
            yield env.timeout(float(rng.exponential(1.0 / rate)))
            env.process(inst.request())

    env.process(arrivals())
    env.run(until=seconds)
    inst._count(0)
    inst.result.seconds, inst.result.warmup_s = seconds, seconds / 10
    return inst.result


@dataclass(frozen=True)
class LoadTable:
    """Per-instance figures at utilisations ``rho`` (arrival rate / capacity), from the exact
    model: latency quantiles (s, at :data:`QUANTILES`), mean Backlog and mean queue wait (s)."""

    capacity: float
    rho: np.ndarray  # (L,)
    quantiles: np.ndarray  # (L, Q) seconds
    backlog: np.ndarray  # (L,)
    queue_wait: np.ndarray  # (L,) seconds

    def index(self, rho: np.ndarray) -> np.ndarray:
        """Row of the nearest tabulated utilisation at or above each ``rho`` (capped)."""
        idx = np.searchsorted(self.rho, rho)
        return np.minimum(idx, len(self.rho) - 1)


def load_table(profile: Profile, *, requests: int = 4000, seed: int = 0) -> LoadTable:
    """Run the exact model open-loop at 5 % … 95 % of capacity (``requests`` answers each)."""
    cap = profile.capacity_per_s()
    rhos = np.round(np.arange(0.05, 0.951, 0.05), 2)
    quant, backlog, wait = [], [], []
    for i, rho in enumerate(rhos):
        rate = float(rho * cap)
        res = open_loop(profile, rate=rate, seconds=requests / rate, seed=seed + i)
        lat = np.asarray(res.latency)[np.asarray(res.status) == 200]
        quant.append(np.quantile(lat, QUANTILES))
        backlog.append(res.backlog_area / res.seconds)
        wait.append(float(np.mean(res.waits)) if res.waits else 0.0)
    return LoadTable(cap, rhos, np.asarray(quant), np.asarray(backlog), np.asarray(wait))
