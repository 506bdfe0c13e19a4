"""What the Auto Scaling group does for given metric values: a pure model of the two policies.

``deploy/cloudformation.yaml`` configures two policies on the group; AWS evaluates them, moto
does not, so this module states the same decision as a function that tests can pin down at the
boundaries. The numbers live in the template (parameter defaults and the step adjustments);
``tests/test_scaling.py`` checks that :data:`DEFAULT_PARAMS` equals them.

1. **Target tracking on ``Backlog``** (queued + in-flight requests per instance, Average over the
   group's dimension). Capacity follows ``ceil(current * backlog / target)``: with the same load
   on more instances the per-instance backlog falls in proportion, which is what target tracking
   needs. Scale-in is more conservative than scale-out, as AWS's is:
   only below ``scale_in_ratio * target``, and never while the queue-wait alarm is firing.
2. **Step scaling on ``GPUQueueWait``** (Average, one 60 s period): at or above the threshold
   the group grows by the step for how far above the threshold the wait is. Lower bounds are
   inclusive and upper bounds exclusive, as AWS applies them above a breach threshold.

When both want to scale out, the larger capacity wins (AWS picks the policy giving the largest
capacity); the result is clamped to ``[min_size, max_size]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_PARAMS", "Decision", "ScalingParams", "Step", "decide"]

Action = Literal["scale_out", "scale_in", "hold"]


@dataclass(frozen=True)
class Step:
    """Add ``adjustment`` instances when ``lower <= wait - threshold < upper`` (ms)."""

    lower: float
    upper: float | None
    adjustment: int


@dataclass(frozen=True)
class ScalingParams:
    """The thresholds of both policies (defaults mirror the template)."""

    backlog_target: float
    queue_wait_alarm_ms: float
    steps: tuple[Step, ...]
    scale_in_ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.backlog_target <= 0:
            raise ValueError(f"backlog_target must be > 0, got {self.backlog_target}")
        if not 0 < self.scale_in_ratio <= 1:
            raise ValueError(f"scale_in_ratio must be in (0, 1], got {self.scale_in_ratio}")
        if not self.steps or self.steps[0].lower != 0:
            raise ValueError("steps must start at 0 ms above the threshold")
        for a, b in zip(self.steps, self.steps[1:], strict=False):
            if a.upper != b.lower:
                raise ValueError(f"steps must be contiguous: {a} then {b}")
        if self.steps[-1].upper is not None:
            raise ValueError("the last step must be open-ended (upper=None)")


@dataclass(frozen=True)
class Decision:
    """The group's new desired capacity and why."""

    action: Action
    desired: int
    reason: str


# Template defaults: BacklogTargetPerInstance, QueueWaitAlarmMs and QueueWaitStepScaleOut's steps.
DEFAULT_PARAMS = ScalingParams(
    backlog_target=3.0,
    queue_wait_alarm_ms=250.0,
    steps=(Step(0.0, 250.0, 1), Step(250.0, 550.0, 2), Step(550.0, None, 4)),
)


def _step_adjustment(queue_wait_ms: float, params: ScalingParams) -> int:
    over = queue_wait_ms - params.queue_wait_alarm_ms
    for step in params.steps:
        if over >= step.lower and (step.upper is None or over < step.upper):
            return step.adjustment
    return 0  # below the threshold: the alarm is OK


def decide(
    backlog_per_instance: float | None,
    queue_wait_ms: float | None,
    current: int,
    min_size: int,
    max_size: int,
    params: ScalingParams = DEFAULT_PARAMS,
) -> Decision:
    """Desired capacity for one evaluation of both policies.

    Args:
        backlog_per_instance: ``Backlog`` Average over the group (None: no data this period).
        queue_wait_ms: ``GPUQueueWait`` Average over the group in ms (None: no data; the alarm
            treats missing data as not breaching).
        current: the group's current desired capacity.
        min_size: the group's MinSize.
        max_size: the group's MaxSize.
        params: thresholds; the template's defaults unless given.
    """
    if not 0 <= min_size <= max_size:
        raise ValueError(f"need 0 <= min_size <= max_size, got {min_size}, {max_size}")
    if current < 0:
        raise ValueError(f"current must be >= 0, got {current}")

    tracked = current
    tracked_reason = "no Backlog data"
    if backlog_per_instance is not None:
        if backlog_per_instance < 0:
            raise ValueError(f"backlog must be >= 0, got {backlog_per_instance}")
        # Load that is there now; with no instances, one backlogged request still needs one.
        total = backlog_per_instance * max(current, 1)
        target = params.backlog_target
        if backlog_per_instance > target:
            tracked = math.ceil(total / target)
            tracked_reason = f"Backlog {backlog_per_instance:g} > target {target:g}"
        elif backlog_per_instance < params.scale_in_ratio * target:
            tracked = max(math.ceil(total / target), 1 if total > 0 else 0)
            tracked_reason = (
                f"Backlog {backlog_per_instance:g} < {params.scale_in_ratio:g} x target {target:g}"
            )
        else:
            tracked_reason = f"Backlog {backlog_per_instance:g} within target {target:g}"

    stepped = current
    alarm = False
    if queue_wait_ms is not None and queue_wait_ms >= params.queue_wait_alarm_ms:
        alarm = True
        stepped = current + _step_adjustment(queue_wait_ms, params)

    if alarm and stepped >= tracked:
        desired, reason = (
            stepped,
            f"GPUQueueWait {queue_wait_ms:g} ms >= {params.queue_wait_alarm_ms:g} ms: "
            f"+{stepped - current}",
        )
    elif tracked > current or (tracked < current and not alarm):
        desired, reason = tracked, tracked_reason
    else:
        desired, reason = current, tracked_reason

    clamped = min(max(desired, min_size), max_size)
    if clamped != desired:
        reason += f" (clamped to [{min_size}, {max_size}])"
    if clamped > current:
        return Decision("scale_out", clamped, reason)
    if clamped < current:
        return Decision("scale_in", clamped, reason)
    return Decision("hold", clamped, reason)
