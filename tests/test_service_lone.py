"""A request with the server to itself: its photo decoded and run in one lane job
(``DeviceGate.run_made`` with ``DecodeStage.decode_in``), with the same answers, errors and
bookkeeping as the queued path."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from service_helpers import FakePredictor, ThreadedServer, jpeg, run
from test_service_gate import Recorder, job, make_gate, top

from emojinet.errors import InvalidImageError
from service.app import create_app
from service.decoding import DecodeStage
from service.gate import DeviceGate
from service.settings import Settings


class ThreadSpy(FakePredictor):
    """Records the thread of every pass."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def run_batch(self, batch: np.ndarray, *, features: bool = False) -> Any:
        self.threads.append(threading.get_ident())
        return super().run_batch(batch, features=features)


def test_run_made_makes_the_input_and_runs_it_in_one_lane_job() -> None:
    fake, rec = ThreadSpy(), Recorder()
    made_in: list[int] = []

    def make() -> np.ndarray:
        made_in.append(threading.get_ident())
        return job(2)

    async def main() -> Any:
        gate = make_gate(fake, rec, lanes=2)
        try:
            assert gate.idle_for(1)
            result = await gate.run_made(make)
            assert gate.idle_for(1) and gate.in_flight == 0 and not gate.lock.locked()
            return gate, result
        finally:
            await gate.stop()

    gate, result = run(main)
    assert top(result) == 2 and result.batch_size == 1
    assert made_in == fake.threads and made_in[0] != threading.get_ident()
    assert gate.stats.forward_passes == 1 and gate.stats.batch_sizes[1] == 1
    assert rec.waits == [(0.0, True)] and [(b[0], b[2]) for b in rec.batches] == [(1, True)]


def test_what_make_raises_is_the_callers_error_and_no_pass() -> None:
    fake, rec = FakePredictor(), Recorder()

    def make() -> np.ndarray:
        raise InvalidImageError("not an image")

    async def main() -> DeviceGate:
        gate = make_gate(fake, rec, lanes=2)
        try:
            with pytest.raises(InvalidImageError, match="not an image"):
                await gate.run_made(make)
            assert gate.idle_for(1)  # the lane is free again
            assert top(await gate.run_made(lambda: job(3))) == 3
            return gate
        finally:
            await gate.stop()

    gate = run(main)
    assert gate.stats.failed_batches == 0 and gate.stats.forward_passes == 1
    assert fake.calls == 1 and [b[2] for b in rec.batches] == [True]


def test_the_gate_is_not_idle_while_anything_waits_runs_or_is_held() -> None:
    fake = FakePredictor(delay_s=0.2)
    held = [1]

    async def main() -> None:
        gate = make_gate(fake, lanes=2)
        gate.held = lambda: held[0]
        try:
            assert gate.idle_for(1)
            held[0] = 2  # another request is being received
            assert not gate.idle_for(1)
            held[0] = 1
            running = asyncio.ensure_future(gate.submit(job(1)))
            await asyncio.sleep(0.05)
            assert gate.in_flight == 1 and not gate.idle_for(1)
            with pytest.raises(RuntimeError, match="idle gate"):
                await gate.run_made(lambda: job(2))
            await running
            assert gate.idle_for(1)
        finally:
            await gate.stop()

    run(main)


def _stage() -> tuple[DecodeStage, ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    return DecodeStage(executor, workers=2, max_pixels=1_000_000), executor


def _preprocess(data: bytes) -> np.ndarray:
    return np.full((3, 2, 2), len(data), np.float32)


def test_decode_in_holds_a_slot_while_decoding_and_hands_it_back() -> None:
    stage, executor = _stage()
    photo = jpeg()
    seen: dict[str, Any] = {}

    def preprocess(data: bytes) -> np.ndarray:
        seen["running"], seen["idle"] = stage.running, stage.idle()
        return _preprocess(data)

    async def main() -> Any:
        loop = asyncio.get_running_loop()

        async def in_thread(work: Callable[[], np.ndarray]) -> np.ndarray:
            return await loop.run_in_executor(executor, work)

        out = await stage.decode_in(in_thread, preprocess, photo, time.perf_counter() + 5)
        await asyncio.sleep(0)  # the slot's release, sent from the thread
        return out, stage.running, stage.idle()

    with executor:
        out, running, idle = run(main)
    assert seen == {"running": 1, "idle": False}
    assert out[0, 0, 0] == len(photo) and running == 0 and idle


def test_decode_in_frees_the_slot_of_a_job_that_never_ran_and_it_never_runs_late() -> None:
    stage, executor = _stage()
    jobs: list[Callable[[], np.ndarray]] = []

    async def main() -> None:
        async def refuses(work: Callable[[], np.ndarray]) -> np.ndarray:
            jobs.append(work)
            raise RuntimeError("no thread for it")

        with pytest.raises(RuntimeError, match="no thread"):
            await stage.decode_in(refuses, _preprocess, jpeg(), time.perf_counter() + 5)
        assert stage.idle() and stage.running == 0
        with pytest.raises(Exception, match="ended before"):
            jobs[0]()  # started after all: refused, and the slot is not freed twice
        assert stage._slots.free == 2

    with executor:
        run(main)


def test_decode_in_reports_a_bad_photo_and_frees_its_slot() -> None:
    stage, executor = _stage()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def in_thread(work: Callable[[], np.ndarray]) -> np.ndarray:
            return await loop.run_in_executor(executor, work)

        with pytest.raises(InvalidImageError):
            await stage.decode_in(in_thread, _preprocess, b"not a photo", time.perf_counter() + 5)
        await asyncio.sleep(0)
        assert stage.idle() and stage._slots.free == 2

    with executor:
        run(main)


# -- through the server ---------------------------------------------------------------------


@pytest.fixture()
def spied(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ThreadedServer, list[str]]]:
    """A server with a fake model; the list gets "lone" or "queued" for every photo run."""
    paths: list[str] = []
    real_made, real_many = DeviceGate.run_made, DeviceGate.submit_many

    async def made(self: DeviceGate, *args: Any, **kw: Any) -> Any:
        paths.append("lone")
        return await real_made(self, *args, **kw)

    async def many(self: DeviceGate, xs: Any, **kw: Any) -> Any:
        paths.extend(["queued"] * len(xs))
        return await real_many(self, xs, **kw)

    monkeypatch.setattr(DeviceGate, "run_made", made)
    monkeypatch.setattr(DeviceGate, "submit_many", many)
    settings = Settings(max_body_bytes=1_000_000, max_pixels=1_000_000, model_lanes=2)
    with ThreadedServer(create_app(settings, predictor=FakePredictor(delay_s=0.05))) as srv:
        yield srv, paths


def _suggest(url: str, photos: list[bytes]) -> httpx.Response:
    field = "image" if len(photos) == 1 else "images"
    files = [(field, (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]
    return httpx.post(f"{url}/suggest", files=files, timeout=30)


def test_a_lone_request_takes_one_job_and_answers_as_the_queued_path(
    spied: tuple[ThreadedServer, list[str]],
) -> None:
    srv, paths = spied
    green, blue = jpeg((10, 200, 10)), jpeg((10, 10, 200))
    lone = _suggest(srv.url, [green])
    both = _suggest(srv.url, [green, blue])  # several photos: always queued
    assert paths == ["lone", "queued", "queued"]
    assert lone.status_code == 200 and both.status_code == 200
    assert lone.json()["emojis"] == both.json()["results"][0]["emojis"]
    assert lone.json()["emojis"][0]["emoji"] == "☕"  # the fake's marker 1: green
    bad = _suggest(srv.url, [b"GIF89a not really"])
    assert bad.status_code == 400 and "detail" in bad.json() and paths[-1] == "lone"


def test_concurrent_requests_are_queued_and_batched(
    spied: tuple[ThreadedServer, list[str]],
) -> None:
    srv, paths = spied
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _suggest(srv.url, [jpeg()]), range(6)))
    assert all(r.status_code == 200 for r in answers)
    assert len(paths) == 6 and "queued" in paths
