"""The deployed system for a day: load balancer, instances, CloudWatch and the Auto Scaling group.

Per-request processes at 10,000+ requests/s for 86,400 s are far beyond a two-minute budget
(a billion SimPy events), so the fleet moves in ticks of ``dt`` (1 s): each tick draws the
arrivals (Poisson, seeded), splits them over the instances in service (round robin: equal
shares; least outstanding requests: to the emptiest first), and moves each instance's
queue as a fluid: admitted up to ``max_queue`` outstanding (the rest 429), served at its
capacity, and whatever would wait past the deadline 503 (the queue forms before the slowest
stage; ``GPUQueueWait`` sees it only when that stage is the device). Inside a tick (batching,
the per-request spread of latency, the Backlog and queue wait of a loaded but unsaturated
instance), figures come from the exact per-request model of one instance at the same load
(:func:`deploy.sim.exact.load_table`), plus the fluid queue's wait when an instance is over
capacity. SimPy runs the clocks: the tick, the instances' boot, CloudWatch's one-minute
periods, the evaluation delay and the group's once-a-minute policy evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import simpy

from deploy.sim.exact import QUANTILES, LoadTable
from deploy.sim.policies import Policy
from deploy.sim.service import Profile
from deploy.sim.template import GroupConfig
from deploy.sim.traffic import Traffic

__all__ = ["BINS", "FleetConfig", "FleetResult", "run_fleet"]

Proc = Generator[simpy.Event, Any, Any]
BOOTING, IN_SERVICE, DRAINING, GONE = 1, 2, 3, 0
# Latency histogram edges (s): log-spaced from 1 ms to 30 s.
BINS = np.geomspace(1e-3, 30.0, 301)
# A bad minute: more than 1 % of its requests shed, or its p99 over 250 ms (a quarter of the
# deadline, the template's QueueWaitAlarmMs).
BAD_SHED, BAD_P99_MS = 0.01, 250.0


@dataclass(frozen=True)
class FleetConfig:
    """One simulated day.

    ``boot_s`` (launch → answering ``/readyz``: EC2 boot, a several-GB image pull, model load) and
    ``warm_pool_boot_s`` (a stopped warm-pool instance with the image already pulled) are
    ESTIMATES, not measurements; the load balancer adds ``healthy_threshold`` health checks.
    ``metric_delay_s``: from the end of a one-minute period until the group acts on it (the
    service publishes at the end of its 60 s interval; alarms evaluate once a minute).
    """

    group: GroupConfig
    profile: Profile
    table: LoadTable
    policy: Policy
    traffic: Traffic = field(default_factory=Traffic)
    lb: Literal["round_robin", "least_outstanding"] = "round_robin"
    boot_s: float = 240.0
    warm_pool_boot_s: float = 60.0
    metric_delay_s: float = 60.0
    predictive_utilisation: float = 0.6
    dt: float = 1.0
    seconds: float = 86_400.0
    seed: int = 0


@dataclass
class FleetResult:
    """Per-minute series and day totals of one run."""

    name: str
    minutes: np.ndarray  # (M,) minute index
    offered: np.ndarray  # (M,) requests/s offered
    in_service: np.ndarray  # (M,) instances serving at the end of the minute
    billed: np.ndarray  # (M,) instances running (booting, serving, draining)
    p50_ms: np.ndarray  # (M,) of answered requests (NaN: none)
    p99_ms: np.ndarray
    shed: dict[str, np.ndarray]  # cause → (M,) requests
    answered: np.ndarray  # (M,)
    metrics: dict[str, np.ndarray]  # metric → (M,) datapoints
    hist: np.ndarray  # (len(BINS) - 1,) latency histogram of the whole day
    instance_hours: float = 0.0
    cost: float = 0.0
    actions: list[tuple[float, str, int, str]] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        """Day figures for the table and the JSON."""
        offered = float(np.sum(self.offered) * 60)
        shed = {k: float(np.sum(v)) for k, v in self.shed.items()}
        shed_share = sum(self.shed.values()) / np.maximum(self.offered * 60, 1.0)
        slow = np.nan_to_num(self.p99_ms, nan=0.0) > BAD_P99_MS
        return {
            "bad_minutes": float(np.sum((shed_share > BAD_SHED) | slow)),
            "requests": offered,
            "p50_ms": _quantile_ms(self.hist, 0.5),
            "p99_ms": _quantile_ms(self.hist, 0.99),
            "shed_share": sum(shed.values()) / max(offered, 1.0),
            **{f"shed_{k}": v / max(offered, 1.0) for k, v in shed.items()},
            "max_instances": float(np.max(self.billed)),
            "instance_hours": self.instance_hours,
            "cost_usd": self.cost,
        }


def _quantile_ms(hist: np.ndarray, q: float) -> float:
    total = float(np.sum(hist))
    if total <= 0:
        return math.nan
    i = int(np.searchsorted(np.cumsum(hist), q * total))
    return float(math.sqrt(BINS[i] * BINS[min(i + 1, len(BINS) - 1)]) * 1000)


class Fleet:
    """The state of every instance (arrays over slots) and the processes that move it."""

    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(cfg.seed)
        self.mu = cfg.table.capacity
        # an overloaded instance queues before its slowest stage: GPUQueueWait sees that queue
        # only if the slowest stage is the device (on a GPU host it is the event loop)
        self.gate_bound = cfg.profile.bottleneck() == "device"
        n = cfg.group.max_size * 3 + 8
        self.state = np.zeros(n, int)
        self.outstanding = np.zeros(n)
        self.launched = np.zeros(n)
        self.ready_at = np.zeros(n)
        self.gone_at = np.zeros(n)
        self.last_scale_in = -math.inf
        self.instance_s = 0.0
        self.visible: dict[str, list[float]] = {}
        self._minute = self._new_minute()
        self.minutes: list[dict[str, Any]] = []
        self.actions: list[tuple[float, str, int, str]] = []
        ticks = np.arange(0.0, cfg.seconds, cfg.dt)
        self.rates = cfg.traffic.rates(ticks)
        # the day starts as the night before left it: enough warm instances for midnight's load
        start = math.ceil(self.rates[0] / (cfg.predictive_utilisation * self.mu))
        for _ in range(min(max(start, cfg.group.min_size), cfg.group.max_size)):
            slot = self._free_slot()
            self.state[slot], self.launched[slot] = IN_SERVICE, -cfg.group.warmup_s
        self._changed()
        q = cfg.table.quantiles  # (L, Q): each row's latency spread as a histogram
        idx = np.clip(np.searchsorted(BINS, q) - 1, 0, len(BINS) - 2)
        self.row_hist = np.zeros((len(q), len(BINS) - 1))
        for r in range(len(q)):
            self.row_hist[r] = np.bincount(idx[r], minlength=len(BINS) - 1) / q.shape[1]

    def _new_minute(self) -> dict[str, Any]:
        return {
            "offered": 0.0,
            "answered": 0.0,
            "shed": {"429 admission": 0.0, "503 deadline": 0.0, "503 no instance": 0.0},
            "hist": np.zeros(len(BINS) - 1),
            "rows": np.zeros(len(self.cfg.table.rho)),
            "backlog": np.zeros(len(self.state)),
            "ticks": np.zeros(len(self.state)),
            "wait_sum": 0.0,
            "requests": 0.0,
        }

    def _free_slot(self) -> int:
        free = np.flatnonzero(self.state == GONE)
        if not len(free):
            raise RuntimeError("no free instance slot (raise the slot count)")
        return int(free[0])

    # -- the load balancer and the instances, one tick at a time -------------------------------

    def _split(self, arrivals: float, serving: np.ndarray) -> np.ndarray:
        """Arrivals per serving instance."""
        k = len(serving)
        if self.cfg.lb == "round_robin":
            return np.full(k, arrivals / k)
        # least outstanding: fill the emptiest up to the next level first (water-filling)
        level = self.outstanding[serving]
        order = np.sort(level)
        cum = np.cumsum(order)
        # the water level L with sum(max(0, L - level)) == arrivals
        need = order * np.arange(1, k + 1) - cum
        j = int(np.searchsorted(need, arrivals, side="right"))
        water = (arrivals + cum[j - 1]) / j
        shares: np.ndarray = np.maximum(water - level, 0.0)
        return shares

    def _tick(self, i: int) -> None:
        cfg, p, m = self.cfg, self.cfg.profile, self._minute
        dt = cfg.dt
        arrivals = float(self.rng.poisson(self.rates[i] * dt))
        m["offered"] += arrivals
        serving = self._serving
        if not len(serving):
            m["shed"]["503 no instance"] += arrivals
            return
        a = self._split(arrivals, serving)
        o = self.outstanding[serving]
        capacity = self.mu * dt
        # admitted while at most max_queue are outstanding, as the served ones leave
        admitted = np.minimum(a, np.maximum(p.max_queue - o, 0.0) + capacity)
        m["shed"]["429 admission"] += float(np.sum(a - admitted))
        m["requests"] += arrivals
        o = o + admitted
        served = np.minimum(o, capacity)
        left = o - served
        late = np.maximum(left - self.mu * p.deadline_s, 0.0)  # would wait past the deadline
        m["shed"]["503 deadline"] += float(np.sum(late))
        left -= late
        self.outstanding[serving] = left
        fluid_wait = left / self.mu
        row = cfg.table.index(a / capacity)
        queued = fluid_wait > 0
        # unqueued instances: their answers are spread as the exact model's (by table row)
        m["rows"] += np.bincount(row[~queued], served[~queued], minlength=len(cfg.table.rho))
        if np.any(queued):  # the rest wait for the fluid queue too
            lat = cfg.table.quantiles[row[queued]] + fluid_wait[queued, None]  # (k, Q)
            weights = np.repeat(served[queued] / len(QUANTILES), len(QUANTILES))
            idx = np.clip(np.searchsorted(BINS, lat.ravel()) - 1, 0, len(BINS) - 2)
            m["hist"] += np.bincount(idx, weights, minlength=len(BINS) - 1)
        m["answered"] += float(np.sum(served))
        m["backlog"][serving] += cfg.table.backlog[row] + left
        m["ticks"][serving] += 1
        gate_wait = cfg.table.queue_wait[row] + (fluid_wait if self.gate_bound else 0.0)
        m["wait_sum"] += float(np.sum(served * gate_wait))
        if self._draining:  # no new requests; what they hold is answered
            d = np.flatnonzero(self.state == DRAINING)
            self.outstanding[d] = np.maximum(self.outstanding[d] - capacity, 0.0)

    def _changed(self) -> None:
        """Instance states changed: recompute who serves."""
        self._serving = np.flatnonzero(self.state == IN_SERVICE)
        self._running = int(np.sum(self.state != GONE))
        self._draining = bool(np.any(self.state == DRAINING))
        self._next_change = min(
            [self.ready_at[i] for i in np.flatnonzero(self.state == BOOTING)]
            + [self.gone_at[i] for i in np.flatnonzero(self.state == DRAINING)]
            + [math.inf]
        )

    def ticks(self) -> Proc:
        cfg = self.cfg
        for i in range(len(self.rates)):
            self._tick(i)
            self.instance_s += self._running * cfg.dt
            now = i * cfg.dt
            if now >= self._next_change:
                self.state[(self.state == DRAINING) & (self.gone_at <= now)] = GONE
                self.state[(self.state == BOOTING) & (self.ready_at <= now)] = IN_SERVICE
                self._changed()
            yield self.env.timeout(cfg.dt)

    # -- CloudWatch and the group ------------------------------------------------------------

    def cloudwatch(self) -> Proc:
        """Close each one-minute period; its datapoints become visible after the delay."""
        while True:
            yield self.env.timeout(60.0)
            m, self._minute = self._minute, self._new_minute()
            m["hist"] += m["rows"] @ self.row_hist
            published = m["ticks"] > 0
            n = int(np.sum(published))
            point = {
                "Backlog": float(np.mean(m["backlog"][published] / m["ticks"][published]))
                if n
                else None,
                "GPUQueueWait": 1000 * m["wait_sum"] / m["answered"] if m["answered"] else None,
                "RequestCountPerTarget": m["requests"] / n if n else None,
            }
            m["point"] = point
            m["in_service"] = int(np.sum(self.state == IN_SERVICE))
            m["billed"] = int(np.sum(self.state != GONE))
            self.minutes.append(m)
            self.env.process(self._publish(point))

    def _publish(self, point: dict[str, float | None]) -> Proc:
        yield self.env.timeout(self.cfg.metric_delay_s)
        for name, value in point.items():
            if value is not None:
                self.visible.setdefault(name, []).append(value)

    def group(self) -> Proc:
        """Evaluate the policies once a minute (just after CloudWatch's periods close)."""
        cfg = self.cfg
        yield self.env.timeout(1.0)
        while True:
            yield self.env.timeout(60.0)
            now = self.env.now
            counted = int(np.sum(self.state == IN_SERVICE))
            decision = cfg.policy.decide(self.visible, max(counted, 1), cfg.group)
            live = int(np.sum((self.state == BOOTING) | (self.state == IN_SERVICE)))
            # counted excludes the instances still booting: they already count as capacity
            desired = {"hold": live, "scale_out": max(decision.desired, live)}.get(
                decision.action, decision.desired
            )
            if cfg.policy.predictive:
                desired = max(desired, self._forecast_floor(now))
            self._apply(now, desired, decision.reason)

    def _forecast_floor(self, now: float) -> int:
        """Predictive scaling: capacity for the next hour's forecast peak, launched ahead."""
        cfg = self.cfg
        ahead = np.arange(now, now + 3600.0 + cfg.boot_s, 60.0)
        peak = float(np.max(cfg.traffic.forecast(ahead)))
        floor = math.ceil(peak / (cfg.predictive_utilisation * self.mu))
        return min(max(floor, cfg.group.min_size), cfg.group.max_size)

    def _apply(self, now: float, desired: int, reason: str) -> None:
        cfg = self.cfg
        live = np.flatnonzero((self.state == BOOTING) | (self.state == IN_SERVICE))
        current = len(live)
        if desired > current:
            boot = cfg.warm_pool_boot_s if cfg.policy.warm_pool else cfg.boot_s
            checks = cfg.group.health_interval_s * cfg.group.healthy_threshold
            for _ in range(desired - current):
                slot = self._free_slot()
                self.state[slot], self.launched[slot] = BOOTING, now
                self.ready_at[slot], self.outstanding[slot] = now + boot + checks, 0.0
            self.actions.append((now, "out", desired, reason))
            self._changed()
        elif desired < current:
            warming = np.any(self.launched[live] > now - cfg.group.warmup_s)
            if warming or now - self.last_scale_in < cfg.group.cooldown_s:
                return
            newest = live[np.argsort(-self.launched[live])][: current - desired]
            self.state[newest] = DRAINING
            self.gone_at[newest] = now + cfg.group.deregistration_s
            self.last_scale_in = now
            self.actions.append((now, "in", desired, reason))
            self._changed()


def run_fleet(cfg: FleetConfig) -> FleetResult:
    """Simulate the day and collect its per-minute series."""
    fleet = Fleet(cfg)
    env = fleet.env
    env.process(fleet.ticks())
    env.process(fleet.cloudwatch())
    env.process(fleet.group())
    env.run(until=cfg.seconds)
    ms = fleet.minutes
    hists = np.array([m["hist"] for m in ms])
    p50 = [_quantile_ms(h, 0.5) for h in hists]
    p99 = [_quantile_ms(h, 0.99) for h in hists]
    causes = ms[0]["shed"].keys()
    hours = fleet.instance_s / 3600
    return FleetResult(
        name=cfg.policy.name if cfg.lb == "round_robin" else f"{cfg.policy.name}, LOR",
        minutes=np.arange(len(ms)),
        offered=np.array([m["offered"] / 60 for m in ms]),
        in_service=np.array([m["in_service"] for m in ms]),
        billed=np.array([m["billed"] for m in ms]),
        p50_ms=np.array(p50),
        p99_ms=np.array(p99),
        shed={c: np.array([m["shed"][c] for m in ms]) for c in causes},
        answered=np.array([m["answered"] for m in ms]),
        metrics={
            k: np.array([np.nan if m["point"][k] is None else m["point"][k] for m in ms])
            for k in ms[0]["point"]
        },
        hist=hists.sum(axis=0),
        instance_hours=hours,
        cost=hours * cfg.profile.price_per_hour,
        actions=fleet.actions,
    )
