"""Concurrency over real HTTP: a real uvicorn server on loopback running the real app with a fake,
deliberately slow predictor: batching, the lock, 429 on overload, 503 at the deadline, failures,
API keys, readiness."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from service_helpers import FakePredictor, ThreadedServer, free_port, jpeg

from deploy.launch import serve_cmd_for_tests
from emojinet.backends import Outputs
from service.app import create_app
from service.settings import Settings
from service.state import ServiceState

COLORS = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]  # markers 0, 1, 2: emojis 🐱 ☕ 🚀
WHITE = (255, 255, 255)  # the fake's poison


def settings(**kw: Any) -> Settings:
    return Settings(**{"max_batch_delay_ms": 0, "cloudwatch_enabled": False, **kw})


def state_of(srv: ThreadedServer) -> ServiceState:
    state: ServiceState = srv.server.config.app.state.service  # type: ignore[attr-defined]
    return state


async def _burst(url: str, n: int, make: Callable[[int], bytes], **kw: Any) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=n)
    ) as c:
        return await asyncio.gather(
            *(c.post("/suggest", files={"image": ("x.jpg", make(i))}, **kw) for i in range(n))
        )


def burst(
    url: str, n: int, make: Callable[[int], bytes] = lambda i: jpeg(COLORS[i % 3]), **kw: Any
) -> list[httpx.Response]:
    return asyncio.run(_burst(url, n, make, **kw))


def test_concurrent_requests_are_batched_behind_one_lock() -> None:
    fake = FakePredictor(delay_s=0.05)
    app = create_app(settings(max_batch_size=8, model_lanes=1), predictor=fake)
    with ThreadedServer(app) as srv:
        answers = burst(srv.url, 16)
        assert [r.status_code for r in answers] == [200] * 16
        tops = [r.json()["emojis"][0]["emoji"] for r in answers]
        assert tops == [["🐱", "☕", "🚀"][i % 3] for i in range(16)], "each gets its own row"
        assert fake.calls < 16, f"16 concurrent requests took {fake.calls} forward passes"
        assert fake.max_concurrent == 1
        assert max(r.json()["timing"]["queue_ms"] for r in answers) > 0
        gate = state_of(srv).gate
        assert gate is not None and gate.stats.max_concurrent_passes == 1
        text = httpx.get(f"{srv.url}/metrics").text
        assert re.search(r"^emojinet_queue_wait_seconds_count 16\.0$", text, re.M)
        assert re.search(r"^emojinet_batch_size_sum 16\.0$", text, re.M)


def test_overload_answers_429_early_while_accepted_requests_succeed() -> None:
    fake = FakePredictor(delay_s=0.1)
    app = create_app(settings(max_batch_size=1, max_queue=2, queue_deadline_s=30), predictor=fake)
    with ThreadedServer(app) as srv:
        answers = burst(srv.url, 12)
        codes = sorted(r.status_code for r in answers)
        assert set(codes) == {200, 429}, codes
        refused = next(r for r in answers if r.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert "the server is busy" in refused.json()["detail"]
        assert all(r.json()["emojis"] for r in answers if r.status_code == 200)
        assert fake.calls == codes.count(200)
        text = httpx.get(f"{srv.url}/metrics").text
        assert 'emojinet_gate_rejections_total{reason="overloaded"}' in text


def test_requests_past_the_queue_deadline_get_503_and_are_not_run() -> None:
    fake = FakePredictor(delay_s=0.4)
    app = create_app(settings(max_batch_size=1, queue_deadline_s=0.1), predictor=fake)
    with ThreadedServer(app) as srv:
        answers = burst(srv.url, 4)
        late = [r for r in answers if r.status_code == 503]
        assert len(late) >= 2, [r.status_code for r in answers]
        assert "queue deadline" in late[0].json()["detail"]
        assert int(late[0].headers["retry-after"]) >= 1
        assert fake.calls == 4 - len(late), "expired requests must not reach the model"


def test_a_failing_image_gets_500_and_the_rest_of_its_batch_is_answered() -> None:
    # One lane, held by a slow first pass while the six arrive, so that they wait together and
    # are tried as one batch however loaded the machine is (the batch delay is only waited
    # while photos are being decoded, not while their requests are still being received).
    fake = FakePredictor(delay_s=0.5)
    app = create_app(
        settings(max_batch_size=8, max_batch_delay_ms=100, model_lanes=1, queue_deadline_s=30),
        predictor=fake,
    )
    with ThreadedServer(app) as srv, ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(burst, srv.url, 1)
        deadline = time.monotonic() + 10
        while not fake.calls and time.monotonic() < deadline:
            time.sleep(0.005)
        fake.delay_s = 0.02  # the blocker's pass is asleep already
        answers = burst(srv.url, 6, lambda i: jpeg(WHITE if i == 2 else COLORS[i % 3]))
        assert blocker.result()[0].status_code == 200
        assert [r.status_code for r in answers] == [200, 200, 500, 200, 200, 200]
        bad = answers[2]
        rid = bad.headers["x-request-id"]
        assert bad.json() == {
            "detail": f"internal server error; quote request id {rid} when reporting it"
        }
        assert fake.batch_sizes[:2] == [1, 6], "the six should have been tried as one batch"
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert burst(srv.url, 2)[0].status_code == 200


def test_api_keys_guard_every_endpoint_that_returns_data() -> None:
    app = create_app(settings(api_keys=["k1", "k2"]), predictor=FakePredictor())
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url) as c:
        files = {"image": ("x.jpg", jpeg())}
        r = c.post("/suggest", files=files)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer <key>" in r.json()["detail"]
        r = c.post("/suggest", files=files, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["detail"] == "the API key is not valid"
        r = c.post("/suggest", files=files, headers={"Authorization": "Basic azE6"})
        assert r.status_code == 401
        assert (
            c.post("/suggest", files=files, headers={"Authorization": "Bearer k2"}).status_code
            == 200
        )
        for path in ("/healthz", "/readyz", "/docs", "/"):  # probes, page, docs: open
            assert c.get(path).status_code == 200, path
        for path in ("/metrics", "/model", "/emojis"):
            r = c.get(path)
            assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"], path
            assert c.get(path, headers={"Authorization": "Bearer k1"}).status_code == 200, path


def test_readyz_is_503_when_the_model_cannot_load(tmp_path: pytest.TempPathFactory) -> None:
    app = create_app(settings(model=f"{tmp_path}/missing"))
    with ThreadedServer(app, ready_path="/healthz") as srv, httpx.Client(base_url=srv.url) as c:
        for _ in range(100):
            if state_of(srv).load_error:
                break
            asyncio.run(asyncio.sleep(0.05))
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "the model failed to load: CheckpointError" in r.json()["detail"]
        r = c.post("/suggest", files={"image": ("x.jpg", jpeg())})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "failed to load" in r.json()["detail"]


class ZeroPredictor(FakePredictor):
    """Every emoji scores 0: there is nothing to draw."""

    def run_batch(self, batch: np.ndarray, *, features: bool = False) -> Outputs:
        out = super().run_batch(batch, features=features)
        return Outputs(np.zeros_like(out.probs), out.features)


def test_distribution_failures_are_answers_not_500s(tmp_path: Path) -> None:
    gan = tmp_path / "gan"  # never read: this predictor has no features for a GAN
    app = create_app(settings(gan_model=str(gan)), predictor=ZeroPredictor())
    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.url) as c:
        files = {"image": ("x.jpg", jpeg())}
        r = c.post("/distribution?n=10", files=files)
        assert r.status_code == 422
        assert r.json()["detail"] == "all scores are zero: there is nothing to sample"
        r = c.post("/distribution?head=gan", files=files)
        assert r.status_code == 400
        assert r.json()["detail"] == (
            "the GAN head is not available: the fake backend of this model does not return "
            "its backbone features"
        )
        assert c.get("/model").json()["gan"]["loaded"] is False


def test_a_gpu_server_without_a_gpu_refuses_to_start(tmp_path: Path) -> None:
    """``EMOJINET_DEVICE=cuda`` (the Docker image and the template set it): no silent CPU."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the server would start on it")
    env = {**os.environ, "EMOJINET_DEVICE": "cuda", "EMOJINET_CLOUDWATCH_ENABLED": "false"}
    r = subprocess.run(
        serve_cmd_for_tests("127.0.0.1", free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert "CUDA" in r.stderr and "could not load the model" in r.stderr, r.stderr[-2000:]
