"""The simulator (deploy/sim): the gate policy against the real DeviceGate, the group's timing
(metric period, evaluation delay, warm-up, cooldown), seeds, and the template it reads."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import simpy

from deploy.scaling import DEFAULT_PARAMS
from deploy.sim.exact import closed_loop, load_table, open_loop
from deploy.sim.fleet import Fleet, FleetConfig, run_fleet
from deploy.sim.gate import SimGate
from deploy.sim.policies import Policy
from deploy.sim.service import cpu_profile, gpu_profile
from deploy.sim.template import TEMPLATE, read_template
from deploy.sim.traffic import Traffic
from emojinet.backends import Outputs
from service.gate import DeadlineExceeded, DeviceGate, Overloaded

# One arrival sequence, in units of 20 ms, against a gate with 2-image batches of 400 ms, at most
# 3 waiting and a 700 ms deadline. Every arrival is at least 20 ms from a batch start or a
# deadline, so scheduling jitter on a busy machine cannot reorder events.
UNIT_S = 0.02
ARRIVALS = [0, 3, 6, 9, 12, 21.5, 23.5, 32, 45]
GATE = {"max_batch": 2, "max_queue": 3, "deadline_s": 35 * UNIT_S}
PASS_S = 20 * UNIT_S
# 0 runs alone; 1-3 wait (3 = max_queue) so 4 is refused; at 400 ms [1, 2] run and 3 stays;
# 5, 6 join it and 7 is refused; at 800 ms [3, 5] run and 6 (deadline 1170 ms) expires before
# the next batch at 1200 ms, which runs 8 alone.
EXPECTED = ([[0], [1, 2], [3, 5], [8]], [4, 7], [6])


def run_real_gate() -> tuple[list[list[int]], list[int], list[int]]:
    batches: list[list[int]] = []

    def predict(batch: np.ndarray, *, features: bool = False) -> Outputs:
        batches.append([int(v) for v in batch[:, 0]])
        time.sleep(PASS_S)
        return Outputs(np.zeros((len(batch), 2), np.float32))

    refused: list[int] = []
    expired: list[int] = []

    async def main() -> None:
        gate = DeviceGate(
            predict,
            max_batch_size=GATE["max_batch"],
            max_queue=GATE["max_queue"],
            queue_deadline_s=GATE["deadline_s"],
        )
        gate.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def client(rid: int, at: float) -> None:
            await asyncio.sleep(max(0.0, t0 + at * UNIT_S - loop.time()))
            try:
                await gate.submit(np.full(1, rid, np.float32))
            except Overloaded:
                refused.append(rid)
            except DeadlineExceeded:
                expired.append(rid)

        try:
            await asyncio.gather(*(client(i, at) for i, at in enumerate(ARRIVALS)))
        finally:
            await gate.stop()

    asyncio.run(main())
    return batches, sorted(refused), sorted(expired)


def run_sim_gate() -> tuple[list[list[int]], list[int], list[int]]:
    env = simpy.Environment()
    gate = SimGate(env, lambda b, alone: PASS_S, batch_delay_s=0.0, **GATE)  # type: ignore[arg-type]

    def client(rid: int, at: float) -> simpy.events.ProcessGenerator:
        yield env.timeout(at * UNIT_S)
        if gate.check_admission():
            gate.submit(rid)
        else:
            gate.stats.refused.append(rid)

    for i, at in enumerate(ARRIVALS):
        env.process(client(i, at))
    env.run(until=10)
    return gate.stats.batches, sorted(gate.stats.refused), sorted(gate.stats.expired)


def test_sim_gate_batches_and_sheds_like_the_real_gate() -> None:
    sim = run_sim_gate()
    assert sim == EXPECTED
    assert run_real_gate() == sim


def test_sim_gate_waits_for_a_batch_only_while_inputs_are_coming() -> None:
    def batches(incoming: int) -> list[list[int]]:
        env = simpy.Environment()
        gate = SimGate(
            env,
            lambda b, alone: 0.1,
            max_batch=4,
            batch_delay_s=0.05,
            max_queue=8,
            deadline_s=1.0,
            incoming=lambda: incoming,
        )

        def client(rid: int, at: float) -> simpy.events.ProcessGenerator:
            yield env.timeout(at)
            gate.submit(rid)

        for rid, at in enumerate([0.0, 0.01, 0.02]):
            env.process(client(rid, at))
        env.run(until=1)
        return gate.stats.batches

    assert batches(incoming=0) == [[0], [1, 2]]  # nothing coming: no wait
    assert batches(incoming=1) == [[0, 1, 2]]  # waits up to 50 ms: all three in one pass


def test_one_client_costs_the_sum_of_the_measured_stages() -> None:
    prof = replace(cpu_profile(), spread=0.0)
    res = closed_loop(prof, clients=1, seconds=2.0, warmup_s=0.1)
    one = prof.loop_s + prof.decode_s + prof.pass_s(1, alone=True)  # nothing else runs
    assert res.summary()["p50_ms"] == pytest.approx(one * 1000, rel=1e-6)
    assert res.summary()["shed"] == 0
    spread = closed_loop(cpu_profile(), clients=1, seconds=5.0).summary()  # measured spread
    assert spread["p99_ms"] > 1.5 * spread["p50_ms"]


def test_overload_sheds_at_admission_with_held_429s_or_by_the_deadline() -> None:
    prof = cpu_profile()
    assert (prof.max_queue, prof.refusal_delay_s) == (24 * prof.lanes, 1.0)  # the defaults
    cpu = closed_loop(prof, clients=192, seconds=4.0).summary()
    assert cpu["shed_429"] > 0.4 and cpu["shed_503"] < 0.02  # 192 clients > max_queue 48
    assert cpu["p50_ms"] == pytest.approx(1000, rel=0.01)  # most answers: 429s held for 1 s
    # A queue longer than the deadline's worth of work, refusals at once: the deadline binds.
    late = prof.with_settings(max_queue=256, refusal_delay_s=0.0)
    deadline = closed_loop(late, clients=192, seconds=4.0).summary()
    assert deadline["shed_503"] > 0.1 and deadline["shed_429"] == 0
    gpu = gpu_profile()
    over = open_loop(gpu, rate=3 * gpu.capacity_per_s(), seconds=3.0, seed=1).summary()
    assert over["shed_429"] > 0.5  # max_queue 256 < capacity x deadline: admission binds first


def test_template_parameters_are_read_from_the_file(tmp_path: Path) -> None:
    group = read_template()
    assert group.params == DEFAULT_PARAMS
    assert (group.min_size, group.max_size, group.instance_type) == (2, 10, "g5.xlarge")
    assert (group.warmup_s, group.alarm_period_s, group.alarm_points) == (300.0, 60.0, 1)
    assert (group.health_interval_s, group.healthy_threshold, group.deregistration_s) == (
        10.0,
        2,
        30.0,
    )
    text = TEMPLATE.read_text()
    edited = text.replace("    Default: 300\n", "    Default: 120\n").replace(
        "ScalingAdjustment: 4", "ScalingAdjustment: 6"
    )
    assert edited.count("Default: 120") == 1
    (tmp_path / "t.yaml").write_text(edited)
    other = read_template(tmp_path / "t.yaml")
    assert other.warmup_s == 120.0
    assert other.params.steps[-1].adjustment == 6


@pytest.fixture(scope="module")
def small() -> FleetConfig:
    prof = gpu_profile()
    table = load_table(prof, requests=200)
    flat = Traffic(trough=2000, peak=2000, noise=0.0, burst_at_s=600.0, burst_factor=3.0)
    flat = replace(flat, burst_rise_s=1.0, burst_hold_s=1e6)
    return FleetConfig(
        group=read_template().with_sizes(max_size=40),
        profile=prof,
        table=table,
        policy=Policy("x", None, 0.0),
        traffic=flat,
        seconds=1200.0,
    )


def first_action(cfg: FleetConfig) -> float:
    return run_fleet(cfg).actions[0][0]


def test_the_group_reacts_after_the_period_and_the_evaluation_delay(small: FleetConfig) -> None:
    # a GPU slow enough to be the bottleneck, so that the queue is the gate's
    slow = replace(small.profile, pass_fixed_s=0.01, pass_per_image_s=0.01)
    assert slow.bottleneck() == "device"
    slow_cfg = replace(small, profile=slow, table=load_table(slow, requests=200))
    # load triples at 600 s; the first full period of it closes at 660 s, CloudWatch shows it
    # 60 s later, and the group evaluates 1 s after each minute: the step alarm acts at 721 s
    step = replace(slow_cfg, policy=Policy("step", None, 0.0))
    assert first_action(step) == 721.0
    # target tracking needs 3 datapoints above target: 600-780 s, visible at 840 s
    per_min = round(0.6 * small.table.capacity * 60)
    tracking = Policy("rc", "RequestCountPerTarget", per_min, step=False)
    assert first_action(replace(small, policy=tracking)) == 841.0
    # a longer evaluation delay delays it by as much
    assert first_action(replace(step, metric_delay_s=180.0)) == 841.0


def test_a_loop_bound_instance_hides_its_queue_from_gpu_queue_wait(small: FleetConfig) -> None:
    # on the GPU host the event loop is the slowest stage: overloaded, requests queue before the
    # gate, so Backlog climbs to max_queue while GPUQueueWait stays far below the step alarm
    assert small.profile.bottleneck() == "event loop"
    res = run_fleet(replace(small, policy=Policy("step", None, 0.0)))
    after = res.minutes >= 11  # periods wholly after the step in load
    assert np.nanmin(res.metrics["Backlog"][after]) > 200
    assert np.nanmax(res.metrics["GPUQueueWait"][after]) < 10
    assert not res.actions  # the step alarm never fires
    assert res.totals()["shed_429 admission"] > 0.25  # (6000 - 10 x 369) / 6000 of half the run


def test_warm_up_and_cooldown_hold_back_scale_in(small: FleetConfig) -> None:
    fleet = Fleet(small)
    start = int(np.sum(fleet.state == 2))
    fleet._apply(1000.0, start + 4, "out")
    assert int(np.sum(fleet.state == 1)) == 4  # booting
    fleet._apply(1000.0 + small.group.warmup_s - 1, start, "in")  # still warming
    assert int(np.sum(fleet.state == 1)) == 4 and len(fleet.actions) == 1
    fleet._apply(1000.0 + small.group.warmup_s, start + 2, "in")
    assert len(fleet.actions) == 2 and int(np.sum(fleet.state == 3)) == 2  # 2 draining
    t = 1000.0 + small.group.warmup_s
    fleet._apply(t + small.group.cooldown_s - 1, start, "in")  # in the cooldown
    assert len(fleet.actions) == 2
    fleet._apply(t + small.group.cooldown_s, start, "in")
    assert len(fleet.actions) == 3


def test_a_seed_gives_the_same_day(small: FleetConfig) -> None:
    cfg = replace(small, traffic=replace(small.traffic, noise=0.05, seed=3), seed=3)
    a, b = run_fleet(cfg), run_fleet(cfg)
    assert a.totals() == b.totals()
    assert np.array_equal(a.offered, b.offered) and a.actions == b.actions
    c = run_fleet(replace(cfg, seed=4))
    assert not np.array_equal(a.offered, c.offered)
    one = open_loop(cpu_profile(), rate=50, seconds=2.0, seed=5)
    assert one.latency == open_loop(cpu_profile(), rate=50, seconds=2.0, seed=5).latency


def test_least_outstanding_fills_the_emptiest_first(small: FleetConfig) -> None:
    fleet = Fleet(replace(small, lb="least_outstanding"))
    serving = fleet._serving[:3]
    fleet.outstanding[serving] = [20.0, 0.0, 10.0]
    assert fleet._split(15.0, serving).tolist() == [0.0, 12.5, 2.5]  # both up to 12.5
    assert fleet._split(45.0, serving).tolist() == [5.0, 25.0, 15.0]  # all up to 25
    rr = Fleet(small)
    assert rr._split(15.0, serving).tolist() == [5.0, 5.0, 5.0]


def test_validation_simulates_with_the_profile_it_is_given() -> None:
    """``validate_sim --results DIR`` reads the CPU profile from DIR's serve.json: session 4's
    profile (a slower machine) gives fewer answers than the committed one, and the table marks
    each figure against the measured mean."""
    from deploy import validate_sim

    session4 = Path(validate_sim.REPO, "deploy", "results", "session4")
    now = validate_sim.simulate((4,), 3.0, 1, session4)[0]
    committed = validate_sim.simulate((4,), 3.0, 1)[0]
    assert now["answers_per_s"] < 0.85 * committed["answers_per_s"]
    measured = [{"clients": 4, "answers_per_s": 70.0, "p50_ms": 56.0, "p99_ms": 110.0, "shed": 0.0}]
    table = validate_sim.table(measured, [{**now, "p50_ms": 56.0 * 1.3}])
    assert table.splitlines()[-1].endswith("no, yes, yes")  # p50 30% off; p99 and shed within
