"""The scaling decision at its boundaries, and its numbers equal to the template's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.scaling import DEFAULT_PARAMS, ScalingParams, Step, decide

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "cloudformation.yaml"
TARGET = DEFAULT_PARAMS.backlog_target  # 3
ALARM = DEFAULT_PARAMS.queue_wait_alarm_ms  # 250 ms


def test_defaults_are_the_templates() -> None:
    from cfnlint.decode import decode_str

    data, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    template = json.loads(json.dumps(data))
    params = template["Parameters"]
    resources = template["Resources"]
    assert float(params["BacklogTargetPerInstance"]["Default"]) == DEFAULT_PARAMS.backlog_target
    assert float(params["QueueWaitAlarmMs"]["Default"]) == DEFAULT_PARAMS.queue_wait_alarm_ms
    steps = resources["QueueWaitStepScaleOut"]["Properties"]["StepAdjustments"]
    assert (
        tuple(
            Step(
                float(s["MetricIntervalLowerBound"]),
                float(s["MetricIntervalUpperBound"]) if "MetricIntervalUpperBound" in s else None,
                int(s["ScalingAdjustment"]),
            )
            for s in steps
        )
        == DEFAULT_PARAMS.steps
    )
    alarm = resources["QueueWaitHighAlarm"]["Properties"]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"  # >= in decide()
    assert alarm["Threshold"] == {"Ref": "QueueWaitAlarmMs"}
    tracking = resources["BacklogTargetTracking"]["Properties"]["TargetTrackingConfiguration"]
    assert tracking["TargetValue"] == {"Ref": "BacklogTargetPerInstance"}


@pytest.mark.parametrize(
    ("backlog", "action", "desired"),
    [
        (TARGET, "hold", 10),  # exactly on target
        (TARGET + 0.01, "scale_out", 11),  # just above: ceil(10 * 3.01 / 3) = 11
        (2 * TARGET, "scale_out", 20),  # twice the target: twice the instances
        (0.9 * TARGET, "hold", 10),  # the scale-in threshold itself holds
        (0.9 * TARGET - 0.01, "scale_in", 9),  # just below: ceil(10 * 2.69 / 3) = 9
        (0.5 * TARGET, "scale_in", 5),  # half the target: half the instances
        (0.0, "scale_in", 2),  # idle: down to min_size
    ],
)
def test_target_tracking_boundaries(backlog: float, action: str, desired: int) -> None:
    decision = decide(backlog, None, current=10, min_size=2, max_size=20)
    assert (decision.action, decision.desired) == (action, desired), decision.reason


def test_scale_in_keeps_backlog_at_or_below_target() -> None:
    # 10 instances at 1.35 each = 13.5 in flight: 5 instances would carry 2.7 each (<= 3).
    decision = decide(0.45 * TARGET, None, current=10, min_size=1, max_size=20)
    assert (decision.action, decision.desired) == ("scale_in", 5)
    assert 10 * 0.45 * TARGET / decision.desired <= TARGET


@pytest.mark.parametrize(
    ("wait_ms", "action", "desired"),
    [
        (ALARM - 0.01, "hold", 4),  # alarm OK just below the threshold
        (ALARM, "scale_out", 5),  # >= threshold: first step, +1
        (ALARM + 249.99, "scale_out", 5),  # upper bound of step 1 is exclusive
        (ALARM + 250, "scale_out", 6),  # step 2: +2
        (ALARM + 549.99, "scale_out", 6),
        (ALARM + 550, "scale_out", 8),  # step 3, open-ended: +4
        (10_000.0, "scale_out", 8),
    ],
)
def test_step_boundaries(wait_ms: float, action: str, desired: int) -> None:
    decision = decide(TARGET, wait_ms, current=4, min_size=2, max_size=10)
    assert (decision.action, decision.desired) == (action, desired), decision.reason


def test_larger_scale_out_wins() -> None:
    # Backlog asks for 8 (2x target), the step alarm for 4 + 1 = 5: target tracking wins.
    assert decide(2 * TARGET, ALARM, 4, 2, 10).desired == 8
    # Backlog asks for 5, the alarm's top step for 8: the step policy wins.
    assert decide(1.25 * TARGET, ALARM + 600, 4, 2, 10).desired == 8


def test_no_scale_in_while_the_alarm_fires() -> None:
    # A low backlog with a long GPU wait (e.g. a slow batch) must not remove capacity.
    decision = decide(1.0, ALARM, current=4, min_size=2, max_size=10)
    assert (decision.action, decision.desired) == ("scale_out", 5)


@pytest.mark.parametrize(
    ("current", "backlog", "wait", "expected"),
    [
        (10, 5 * TARGET, None, ("hold", 10)),  # at max: cannot grow
        (9, TARGET, 5000.0, ("scale_out", 10)),  # +4 clamped to max_size
        (2, 0.0, None, ("hold", 2)),  # at min: cannot shrink
        (1, None, None, ("scale_out", 2)),  # below min (e.g. after a manual change)
        (12, None, None, ("scale_in", 10)),  # above max
        (3, None, None, ("hold", 3)),  # no data at all: hold
    ],
)
def test_limits_and_missing_data(
    current: int, backlog: float | None, wait: float | None, expected: tuple[str, int]
) -> None:
    decision = decide(backlog, wait, current=current, min_size=2, max_size=10)
    assert (decision.action, decision.desired) == expected, decision.reason


def test_reason_names_the_signal() -> None:
    assert "GPUQueueWait" in decide(TARGET, ALARM + 1, 4, 2, 10).reason
    assert "Backlog" in decide(2 * TARGET, None, 4, 2, 10).reason
    assert "clamped" in decide(5 * TARGET, None, 10, 2, 10).reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backlog_target": 0}, "backlog_target"),
        ({"scale_in_ratio": 1.5}, "scale_in_ratio"),
        ({"steps": (Step(10, None, 1),)}, "start at 0"),
        ({"steps": (Step(0, 100, 1), Step(200, None, 2))}, "contiguous"),
        ({"steps": (Step(0, 100, 1),)}, "open-ended"),
    ],
)
def test_bad_params_fail_fast(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "backlog_target": 3,
        "queue_wait_alarm_ms": 250,
        "steps": DEFAULT_PARAMS.steps,
    }
    with pytest.raises(ValueError, match=message):
        ScalingParams(**{**base, **kwargs})  # type: ignore[arg-type]


def test_bad_inputs_fail_fast() -> None:
    with pytest.raises(ValueError, match="min_size"):
        decide(1.0, None, 2, 5, 3)
    with pytest.raises(ValueError, match="backlog"):
        decide(-1.0, None, 2, 1, 3)
