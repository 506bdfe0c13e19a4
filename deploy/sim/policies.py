"""Scaling policies as the group evaluates them once a minute, on the datapoints it can see.

Each policy is a target-tracking policy on one metric (or none) plus, optionally, the template's
step policy on ``GPUQueueWait``; both go through :func:`deploy.scaling.decide`, the decision
the template's tests pin down. A tracking policy acts only when its managed alarm would: 3
consecutive datapoints above the target to scale out, 15 below ``scale_in_ratio`` x target to
scale in (:data:`deploy.sim.template.TRACKING_OUT_POINTS` / ``TRACKING_IN_POINTS``). The step
alarm acts on its last ``alarm_points`` datapoints (the template: one one-minute period).

Metrics (per minute, over the instances in service):

- ``Backlog``: queued + in-flight requests per instance (what the service publishes);
- ``GPUQueueWait``: mean queue wait per request, ms (published as a statistic set);
- ``RequestCountPerTarget``: the load balancer's requests per healthy target per minute
  (``ALBRequestCountPerTarget``, a predefined target-tracking metric).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from deploy.scaling import Decision, ScalingParams, decide
from deploy.sim.exact import LoadTable
from deploy.sim.template import TRACKING_IN_POINTS, TRACKING_OUT_POINTS, GroupConfig

__all__ = ["METRICS", "Policy", "standard_policies"]

METRICS = ("Backlog", "GPUQueueWait", "RequestCountPerTarget")


@dataclass(frozen=True)
class Policy:
    """One way to scale the group.

    Args:
        name: how tables and plots call it.
        tracking: the target-tracking metric (one of :data:`METRICS`), or None.
        target: its target value.
        step: the template's step policy on ``GPUQueueWait`` too.
        step_in_backlog: step-only scale-in: -1 instance after 15 minutes of ``Backlog`` below
            this (None: no such policy).
        warm_pool: launches come from a warm pool of stopped, pre-initialised instances.
        predictive: a forecast of the day (the diurnal curve) keeps capacity ahead of it.
    """

    name: str
    tracking: str | None
    target: float
    step: bool = True
    step_in_backlog: float | None = None
    warm_pool: bool = False
    predictive: bool = False

    def __post_init__(self) -> None:
        if self.tracking is not None and self.tracking not in METRICS:
            raise ValueError(f"tracking must be one of {METRICS}, got {self.tracking!r}")

    def decide(
        self, points: Mapping[str, Sequence[float]], current: int, group: GroupConfig
    ) -> Decision:
        """The desired capacity after this minute's evaluation.

        Args:
            points: each metric's datapoints visible to the group so far, oldest first.
            current: the instances the metrics are averaged over (in service).
            group: sizes and the template's step thresholds.
        """
        params = group.params
        tracked = None
        if self.tracking is not None:
            params = replace(params, backlog_target=self.target)
            tracked = _tracking_value(points.get(self.tracking, ()), params)
        wait = None
        if self.step:
            recent = list(points.get("GPUQueueWait", ()))[-group.alarm_points :]
            if len(recent) == group.alarm_points and all(
                w >= params.queue_wait_alarm_ms for w in recent
            ):
                wait = recent[-1]
        decision = decide(tracked, wait, current, group.min_size, group.max_size, params)
        if self.step_in_backlog is not None and decision.action == "hold":
            recent = list(points.get("Backlog", ()))[-TRACKING_IN_POINTS:]
            if len(recent) == TRACKING_IN_POINTS and max(recent) < self.step_in_backlog:
                desired = max(group.min_size, current - 1)
                if desired < current:
                    return Decision("scale_in", desired, "Backlog low for 15 minutes: -1")
        return decision

    def with_extras(self, *, warm_pool: bool = False, predictive: bool = False) -> Policy:
        """The same policy with a warm pool and/or predictive scaling."""
        extras = [n for n, on in (("warm pool", warm_pool), ("predictive", predictive)) if on]
        name = f"{self.name} + {' + '.join(extras)}" if extras else self.name
        return replace(self, name=name, warm_pool=warm_pool, predictive=predictive)


def _tracking_value(values: Sequence[float], params: ScalingParams) -> float | None:
    """The metric value the managed alarms pass on, or None while neither alarm fires."""
    target = params.backlog_target
    out = list(values)[-TRACKING_OUT_POINTS:]
    if len(out) == TRACKING_OUT_POINTS and all(v > target for v in out):
        return out[-1]
    low = list(values)[-TRACKING_IN_POINTS:]
    if len(low) == TRACKING_IN_POINTS and all(v < params.scale_in_ratio * target for v in low):
        return low[-1]
    return None


def standard_policies(group: GroupConfig, table: LoadTable) -> list[Policy]:
    """The policies issue #17 compares, with targets at comparable loads.

    ``RequestCountPerTarget``'s target is 60 % of one instance's capacity (requests/min) and the
    retuned ``Backlog`` target the Backlog the exact model shows at that load; ``GPUQueueWait``'s
    is 50 ms, a twentieth of the 1 s deadline; step-only scales in after 15 minutes of
    ``Backlog`` below half the template's target.
    """
    backlog = group.params.backlog_target
    per_minute = round(0.6 * table.capacity * 60)
    retuned = round(float(np.interp(0.6, table.rho, table.backlog)), 1)
    return [
        Policy(f"Backlog target {backlog:g} + step (template)", "Backlog", backlog),
        Policy(f"Backlog target {retuned:g} + step", "Backlog", retuned),
        Policy("GPUQueueWait target 50 ms", "GPUQueueWait", 50.0, step=False),
        Policy(f"RequestCountPerTarget {per_minute} + step", "RequestCountPerTarget", per_minute),
        Policy("step only", None, 0.0, step_in_backlog=backlog / 2),
    ]
