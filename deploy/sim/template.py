"""The Auto Scaling group as ``deploy/cloudformation.yaml`` configures it, read from the file.

Everything the simulator takes from the template is read here (parameter defaults, the step
adjustments, the alarm's period and evaluation periods, the health check, the deregistration
delay); what AWS decides and the template does not state is a named constant with its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deploy.scaling import ScalingParams, Step

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "TEMPLATE",
    "TRACKING_IN_POINTS",
    "TRACKING_OUT_POINTS",
    "GroupConfig",
    "read_template",
]

TEMPLATE = Path(__file__).resolve().parents[1] / "cloudformation.yaml"

# Target tracking's managed alarms (AWS Auto Scaling user guide, "Target tracking scaling
# policies"): scale out after 3 consecutive one-minute datapoints above the target, scale in
# after 15 below it.
TRACKING_OUT_POINTS = 3
TRACKING_IN_POINTS = 15
# The group's DefaultCooldown when the template sets none (AWS default, 300 s). Target tracking
# and step policies use the warm-up instead; the simulator applies it between scale-ins only.
DEFAULT_COOLDOWN_S = 300.0


@dataclass(frozen=True)
class GroupConfig:
    """The group, its policies and the target group, as the template sets them."""

    min_size: int
    max_size: int
    instance_type: str
    warmup_s: float  # InstanceWarmupSeconds: DefaultInstanceWarmup and EstimatedInstanceWarmup
    params: ScalingParams  # BacklogTargetPerInstance, QueueWaitAlarmMs, the step adjustments
    alarm_period_s: float  # QueueWaitHighAlarm Period
    alarm_points: int  # QueueWaitHighAlarm EvaluationPeriods
    cooldown_s: float
    health_interval_s: float
    healthy_threshold: int
    deregistration_s: float

    def with_sizes(self, min_size: int | None = None, max_size: int | None = None) -> GroupConfig:
        """The same group with other MinSize/MaxSize (``--parameter-overrides``)."""
        return replace(
            self,
            min_size=self.min_size if min_size is None else min_size,
            max_size=self.max_size if max_size is None else max_size,
        )


def _load(path: Path) -> dict[str, Any]:
    from cfnlint.decode import decode_str  # the YAML with CloudFormation's short tags

    data, errors = decode_str(path.read_text())
    if errors or data is None:
        raise ValueError(f"{path}: cannot parse: {errors}")
    parsed: dict[str, Any] = json.loads(json.dumps(data))
    return parsed


def _step(s: dict[str, Any]) -> Step:
    upper = s.get("MetricIntervalUpperBound")
    return Step(
        float(s["MetricIntervalLowerBound"]),
        None if upper is None else float(upper),
        int(s["ScalingAdjustment"]),
    )


def read_template(path: Path = TEMPLATE) -> GroupConfig:
    """The group's configuration with every parameter at its default."""
    tpl = _load(path)
    params, res = tpl["Parameters"], tpl["Resources"]

    def default(name: str) -> Any:
        return params[name]["Default"]

    asg = res["AutoScalingGroup"]["Properties"]
    steps = res["QueueWaitStepScaleOut"]["Properties"]["StepAdjustments"]
    alarm = res["QueueWaitHighAlarm"]["Properties"]
    tg = res["TargetGroup"]["Properties"]
    attrs = {a["Key"]: a["Value"] for a in tg.get("TargetGroupAttributes", [])}
    return GroupConfig(
        min_size=int(default("MinSize")),
        max_size=int(default("MaxSize")),
        instance_type=str(default("InstanceType")),
        warmup_s=float(default("InstanceWarmupSeconds")),
        params=ScalingParams(
            backlog_target=float(default("BacklogTargetPerInstance")),
            queue_wait_alarm_ms=float(default("QueueWaitAlarmMs")),
            steps=tuple(_step(s) for s in steps),
        ),
        alarm_period_s=float(alarm["Period"]),
        alarm_points=int(alarm["EvaluationPeriods"]),
        cooldown_s=float(asg.get("DefaultCooldown", DEFAULT_COOLDOWN_S)),
        health_interval_s=float(tg["HealthCheckIntervalSeconds"]),
        healthy_threshold=int(tg["HealthyThresholdCount"]),
        deregistration_s=float(attrs.get("deregistration_delay.timeout_seconds", 300)),
    )
