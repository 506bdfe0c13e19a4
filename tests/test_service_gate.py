"""The device gate on its own, with a fake predictor: batching, the lock, backpressure, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from service_helpers import FakePredictor, run

from emojinet.backends import Outputs
from service.gate import DeadlineExceeded, DeviceGate, GateResult, Overloaded, TooManyInputs


def job(marker: int) -> np.ndarray:
    return np.full((3, 2, 2), marker, np.float32)


class Recorder:
    """A GateObserver that keeps everything it is told."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, bool]] = []
        self.batches: list[tuple[int, float, bool]] = []
        self.depths: list[int] = []
        self.rejections: list[str] = []

    def queue_wait(self, seconds: float, *, ran: bool) -> None:
        self.waits.append((seconds, ran))

    def batch(self, size: int, seconds: float, *, ok: bool) -> None:
        self.batches.append((size, seconds, ok))

    def depth(self, depth: int) -> None:
        self.depths.append(depth)

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)


def make_gate(fake: FakePredictor, rec: Recorder | None = None, **kw: float) -> DeviceGate:
    gate = DeviceGate(fake.run_batch, observers=[rec] if rec else [], **kw)  # type: ignore[arg-type]
    gate.start()
    return gate


def top(result: GateResult) -> int:
    return int(np.argmax(result.output.probs))


def test_concurrent_jobs_share_forward_passes_and_get_their_own_rows() -> None:
    fake, rec = FakePredictor(delay_s=0.03), Recorder()

    async def main() -> list[GateResult]:
        gate = make_gate(fake, rec, max_batch_size=8)
        try:
            return await asyncio.gather(*(gate.submit(job(i % 5)) for i in range(20)))
        finally:
            await gate.stop()

    results = run(main)
    assert [top(r) for r in results] == [i % 5 for i in range(20)]
    assert fake.calls < 20, "20 concurrent jobs should run in fewer forward passes"
    assert max(fake.batch_sizes) <= 8
    assert fake.max_concurrent == 1, "the lock must never let two batches run at once"
    assert len(rec.waits) == 20 and all(ran for _, ran in rec.waits)
    assert sum(size for size, _, _ in rec.batches) == 20
    assert all(r.batch_size >= 1 and r.inference_s > 0 and r.queue_s >= 0 for r in results)


def test_forward_pass_runs_off_the_event_loop() -> None:
    fake = FakePredictor(delay_s=0.2)
    seen: list[str] = []
    original = fake.run_batch

    def predict(batch: np.ndarray, *, features: bool = False) -> Outputs:
        seen.append(threading.current_thread().name)
        return original(batch, features=features)

    fake.run_batch = predict  # type: ignore[method-assign]

    async def main() -> int:
        gate = make_gate(fake)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        await gate.submit(job(1))
        t.cancel()
        await gate.stop()
        return ticks

    ticks = run(main)
    assert seen and all(name.startswith("device") for name in seen)
    assert ticks >= 5, "the event loop must keep running during a forward pass"


def test_queue_full_refuses_at_once_and_accepted_jobs_still_succeed() -> None:
    fake, rec = FakePredictor(delay_s=0.1), Recorder()

    async def main() -> list[GateResult | BaseException]:
        gate = make_gate(fake, rec, max_batch_size=1, max_queue=3, queue_deadline_s=30)
        try:
            return await asyncio.gather(
                *(gate.submit(job(1)) for _ in range(10)), return_exceptions=True
            )
        finally:
            await gate.stop()

    out = run(main)
    refused = [r for r in out if isinstance(r, Overloaded)]
    ok = [r for r in out if isinstance(r, GateResult)]
    assert refused and ok and len(refused) + len(ok) == 10
    assert "already waiting" in str(refused[0]) and refused[0].retry_after_s >= 1
    assert all(top(r) == 1 for r in ok)
    assert fake.calls == len(ok)
    assert rec.rejections.count("overloaded") == len(refused)


def test_several_inputs_are_admitted_all_or_none() -> None:
    fake = FakePredictor()

    async def main() -> tuple[int, list[GateResult]]:
        gate = make_gate(fake, max_queue=4)
        try:
            with pytest.raises(TooManyInputs, match="exceed the queue size"):
                await gate.submit_many([job(0)] * 5)
            depth = gate.depth
            return depth, await gate.submit_many([job(i) for i in range(4)])
        finally:
            await gate.stop()

    depth, results = run(main)
    assert depth == 0
    assert [top(r) for r in results] == [0, 1, 2, 3]


def test_deadline_drops_waiting_jobs_without_running_them() -> None:
    fake, rec = FakePredictor(delay_s=0.3), Recorder()

    async def main() -> tuple[list[GateResult | BaseException], int]:
        gate = make_gate(fake, rec, max_batch_size=1, queue_deadline_s=0.1)
        try:
            out = await asyncio.gather(
                *(gate.submit(job(2)) for _ in range(4)), return_exceptions=True
            )
            await gate.drain(5)
            return out, gate.depth
        finally:
            await gate.stop()

    out, depth = run(main)
    assert isinstance(out[0], GateResult)
    expired = [r for r in out if isinstance(r, DeadlineExceeded)]
    assert len(expired) == 3
    assert "queue deadline" in str(expired[0]) and expired[0].retry_after_s >= 1
    assert fake.calls == 1, "expired jobs must not run"
    assert depth == 0
    assert [ran for _, ran in rec.waits].count(False) == 3  # expired waits are recorded too
    assert rec.rejections.count("deadline") == 3


def test_a_failing_input_fails_alone_and_the_batcher_survives() -> None:
    fake = FakePredictor()

    async def main() -> tuple[list[GateResult | BaseException], GateResult]:
        gate = make_gate(fake, max_batch_size=8, max_batch_delay_s=0.05)
        try:
            out = await asyncio.gather(
                gate.submit(job(1)),
                gate.submit(job(-1)),
                gate.submit(job(3)),
                return_exceptions=True,
            )
            return out, await gate.submit(job(4))
        finally:
            await gate.stop()

    out, after = run(main)
    assert isinstance(out[1], ValueError) and "poisoned" in str(out[1])
    assert isinstance(out[0], GateResult) and top(out[0]) == 1
    assert isinstance(out[2], GateResult) and top(out[2]) == 3
    assert fake.batch_sizes[0] == 3, "the three should have been tried as one batch first"
    assert top(after) == 4


def test_a_model_returning_the_wrong_shape_fails_the_batch_not_the_gate() -> None:
    def broken(batch: np.ndarray, *, features: bool = False) -> Outputs:
        return Outputs(np.zeros((0, 5), np.float32))

    async def main() -> GateResult:
        gate = DeviceGate(broken, max_batch_size=4, max_batch_delay_s=0.02)
        gate.start()
        try:
            out = await asyncio.gather(
                gate.submit(job(0)), gate.submit(job(1)), return_exceptions=True
            )
            assert all(isinstance(r, RuntimeError) and "rows for a batch" in str(r) for r in out)
            gate.predict = lambda b, features=False: Outputs(np.ones((len(b), 5), np.float32))
            return await gate.submit(job(2))
        finally:
            await gate.stop()

    result = run(main)
    assert result.output.probs.shape == (5,) and result.output.features is None


def test_batch_delay_waits_to_fill_the_batch() -> None:
    fake = FakePredictor()

    async def main() -> None:
        gate = make_gate(fake, max_batch_size=4, max_batch_delay_s=0.2)
        try:

            async def later(i: int) -> GateResult:
                await asyncio.sleep(0.01 * i)
                return await gate.submit(job(i))

            await asyncio.gather(*(later(i) for i in range(4)))
        finally:
            await gate.stop()

    run(main)
    assert fake.batch_sizes == [4]


def test_a_cancelled_caller_is_not_run() -> None:
    fake = FakePredictor(delay_s=0.2)

    async def main() -> int:
        gate = make_gate(fake, max_batch_size=1, queue_deadline_s=10)
        try:
            first = asyncio.create_task(gate.submit(job(0)))
            await asyncio.sleep(0.02)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(gate.submit(job(1)), 0.05)
            depth = gate.depth
            await first
            await asyncio.sleep(0.05)
            return depth
        finally:
            await gate.stop()

    assert run(main) == 0
    assert fake.calls == 1


def test_drain_waits_for_queued_jobs() -> None:
    fake = FakePredictor(delay_s=0.05)

    async def main() -> tuple[bool, float]:
        gate = make_gate(fake, max_batch_size=1, queue_deadline_s=10)
        tasks = [asyncio.create_task(gate.submit(job(i))) for i in range(4)]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        drained = await gate.drain(5)
        took = time.perf_counter() - t0
        assert all(t.done() and not t.exception() for t in tasks)
        await gate.stop()
        return drained, took

    drained, took = run(main)
    assert drained and took >= 0.15
    assert fake.calls == 4


def test_submit_before_start_is_an_error() -> None:
    gate = DeviceGate(FakePredictor().run_batch)  # type: ignore[arg-type]

    async def main() -> None:
        await gate.submit(job(0))

    with pytest.raises(RuntimeError, match="not running"):
        run(main)


def test_features_are_fetched_only_for_batches_that_need_them() -> None:
    fake = FakePredictor(features_dim=3)

    async def main() -> tuple[list[GateResult], list[GateResult], GateResult]:
        gate = make_gate(fake, max_batch_size=8, max_batch_delay_s=0.05)
        try:
            plain = await asyncio.gather(*(gate.submit(job(i)) for i in range(3)))
            mixed = await asyncio.gather(
                gate.submit(job(1)), gate.submit(job(2), features=True), gate.submit(job(3))
            )
            # A lone job that needs features, after a failing batch is retried one by one.
            one = await asyncio.gather(
                gate.submit(job(-1)), gate.submit(job(4), features=True), return_exceptions=True
            )
            assert isinstance(one[0], ValueError) and isinstance(one[1], GateResult)
            return plain, mixed, one[1]
        finally:
            await gate.stop()

    plain, mixed, retried = run(main)
    assert all(r.output.features is None for r in plain)
    assert fake.feature_calls[0] is False, "no job asked for features: none were fetched"
    assert fake.batch_sizes[1] == 3 and fake.feature_calls[1] is True
    feats = mixed[1].output.require_features()
    assert feats.shape == (3,) and feats.tolist() == [2.0, 2.0, 2.0]  # its own row
    assert [top(r) for r in mixed] == [1, 2, 3]
    assert fake.feature_calls[-1] is True  # the retry of the job that needs them alone
    assert retried.output.require_features().tolist() == [4.0, 4.0, 4.0]


@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_lanes_run_that_many_batches_at_once_and_no_more(lanes: int) -> None:
    fake = FakePredictor(delay_s=0.05)

    async def main() -> tuple[list[GateResult], DeviceGate]:
        gate = make_gate(fake, max_batch_size=2, lanes=lanes)
        try:
            results = await asyncio.gather(*(gate.submit(job(i)) for i in range(12)))
            return results, gate
        finally:
            await gate.stop()

    results, gate = run(main)
    assert [top(r) for r in results] == [i % 5 for i in range(12)], "each gets its own row"
    assert fake.max_concurrent == lanes, "12 jobs in batches of 2 keep every lane busy"
    assert gate.stats.max_concurrent_passes == lanes
    assert max(fake.batch_sizes) <= 2


def test_a_failing_batch_in_one_lane_leaves_the_other_lanes_working() -> None:
    fake = FakePredictor(delay_s=0.02)

    async def main() -> list[GateResult | BaseException]:
        gate = make_gate(fake, max_batch_size=1, lanes=2)
        try:
            jobs = [gate.submit(job(-1 if i == 3 else i)) for i in range(8)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await gate.stop()

    got = run(main)
    assert isinstance(got[3], ValueError)
    rows = [r for i, r in enumerate(got) if i != 3]
    assert all(isinstance(r, GateResult) for r in rows), "the other lane kept answering"
    assert [top(r) for r in rows] == [0, 1, 2, 4, 0, 1, 2]  # type: ignore[arg-type]


def test_lanes_threads_batch_and_queue_size_follow_the_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service import settings as s

    monkeypatch.setattr(s.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert s.cpu_cores() == 4
    assert s.model_lanes(0, "cpu") == 4 and s.model_lanes(0, "cuda:0") == 1
    assert s.model_lanes(2, "cpu") == 2  # a configured count wins
    assert s.cpu_threads_per_lane(0) == 1 and s.cpu_threads_per_lane(2) == 2
    assert s.cpu_threads_per_lane(1) == 4 and s.cpu_threads_per_lane(8) == 1
    assert s.batch_size(0, "cpu") == 8 and s.batch_size(0, "cuda") == 32
    assert s.batch_size(5, "cuda") == 5
    assert s.queue_size(0, "cuda:0", 1) == 256 and s.queue_size(0, "cpu", 2) == 48
    assert s.queue_size(7, "cpu", 2) == 7 and s.queue_size(7, "cuda", 1) == 7


def two_lane_gate(fake: FakePredictor, alone_sizes: list[int], **kw: Any) -> DeviceGate:
    """A started gate of two lanes and batches of 2 whose pass alone records its batch size."""

    def alone(batch: np.ndarray, *, features: bool = False) -> Outputs:
        alone_sizes.append(len(batch))
        return fake.run_batch(batch, features=features)

    predict = fake.run_batch
    gate = DeviceGate(predict, max_batch_size=2, lanes=2, predict_alone=alone, **kw)  # type: ignore[arg-type]
    gate.start()
    return gate


def test_only_a_batch_with_the_device_to_itself_runs_alone() -> None:
    fake, alone_sizes, coming = FakePredictor(delay_s=0.02), [], [0]

    async def main() -> None:
        gate = two_lane_gate(fake, alone_sizes, max_batch_delay_s=0.05, incoming=lambda: coming[0])
        try:
            t0 = time.perf_counter()
            await gate.submit(job(1))  # nothing else anywhere: alone, and no batch delay
            assert time.perf_counter() - t0 < 0.045, "waited for batch-mates none were coming"
            coming[0] = 3  # inputs still decoding: they may join, so not alone
            await gate.submit(job(2))
            coming[0] = 0
            await asyncio.gather(*(gate.submit(job(i)) for i in range(6)))
        finally:
            await gate.stop()

    run(main)
    assert alone_sizes[0] == 1
    assert len(alone_sizes) <= 2, "with jobs waiting or a lane busy, passes are not alone"


def test_a_batch_does_not_run_alone_while_the_server_holds_other_requests() -> None:
    """A request still being received or answered (counted by ``held``) would have to wait
    for a pass on every core, so a batch runs alone only when it is all the server holds."""
    fake, alone_sizes, held = FakePredictor(delay_s=0.01), [], [1]

    async def main() -> None:
        gate = two_lane_gate(fake, alone_sizes, incoming=lambda: 0, held=lambda: held[0])
        try:
            await gate.submit(job(1))  # the only request in the server: alone
            held[0] = 4  # three more in the server, none decoding or queued yet
            await gate.submit(job(2))
            held[0] = 1
            await gate.submit(job(3))
        finally:
            await gate.stop()

    run(main)
    assert alone_sizes == [1, 1], "the pass while others were held ran alone"
    assert fake.calls == 3
