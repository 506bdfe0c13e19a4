"""The CloudWatch publisher against moto's real HTTP server, and against endpoints that fail."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from service_helpers import FakePredictor, ThreadedServer, aws_env, free_port, jpeg

from service.app import create_app
from service.cloudwatch import CloudWatchPublisher
from service.settings import Settings
from service.state import ServiceState

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch) -> None:
    aws_env(monkeypatch)


def cloudwatch(url: str) -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=url)


def stats(url: str, namespace: str, metric: str, dims: dict[str, str]) -> dict[str, float]:
    """All data points of the last few minutes merged into one (SampleCount, Sum, Min, Max)."""
    now = datetime.now(UTC)
    r = cloudwatch(url).get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=600,
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
    )
    points = r["Datapoints"]
    if not points:
        return {}
    return {
        "SampleCount": sum(p["SampleCount"] for p in points),
        "Sum": sum(p["Sum"] for p in points),
        "Minimum": min(p["Minimum"] for p in points),
        "Maximum": max(p["Maximum"] for p in points),
        "Unit": points[0]["Unit"],
    }


def test_statistic_sets_are_published_and_read_back(moto_url: str) -> None:
    dims = {"AutoScalingGroupName": "asg-a", "InstanceId": "i-123"}
    pub = CloudWatchPublisher(
        client_factory=lambda: cloudwatch(moto_url),
        namespace="EmojiNetTest1",
        interval_s=3600,
        dimensions=dims,
    )
    for ms in (1.0, 2.0, 3.0, 10.0):
        pub.queue_wait(ms / 1000, ran=True)
    for status in (200, 429, 503):  # inference requests, answered or refused
        pub.request("/suggest", "POST", status, 0.01)
    pub.request("/readyz", "GET", 200, 0.001)  # not an inference request
    pub.request("/suggest", "other", 405, 0.001)

    async def main() -> None:
        await pub.start()
        await pub.stop(flush=True)  # rolls the aggregates up and sends them

    asyncio.run(main())
    # GPUQueueWait and RequestCount, each under both dimension sets (no depth sample yet).
    assert pub.failures == 0 and pub.buffered == 0 and pub.published == 4
    got = stats(moto_url, "EmojiNetTest1", "GPUQueueWait", dims)
    assert got["SampleCount"] == 4 and got["Sum"] == pytest.approx(16.0)
    assert (got["Minimum"], got["Maximum"]) == (pytest.approx(1.0), pytest.approx(10.0))
    assert got["Unit"] == "Milliseconds"
    # Also the group-wide series (exactly one dimension) that a target tracking policy reads.
    # (moto matches dimensions as a subset, so read the series list instead of the statistics.)
    listed = cloudwatch(moto_url).list_metrics(Namespace="EmojiNetTest1", MetricName="GPUQueueWait")
    dim_sets = sorted(sorted(d["Name"] for d in m["Dimensions"]) for m in listed["Metrics"])
    assert dim_sets == [["AutoScalingGroupName"], ["AutoScalingGroupName", "InstanceId"]]
    assert stats(moto_url, "EmojiNetTest1", "RequestCount", dims)["Sum"] == 3


def cw_settings(endpoint: str, namespace: str, **kw: Any) -> Settings:
    return Settings(
        **{
            "cloudwatch_enabled": True,
            "cloudwatch_region": "us-east-1",
            "cloudwatch_endpoint_url": endpoint,
            "cloudwatch_namespace": namespace,
            "cloudwatch_interval_s": 0.2,
            "cloudwatch_use_instance_metadata": False,
            "cloudwatch_dimensions": {"AutoScalingGroupName": "asg-e2e"},
            "max_batch_size": 4,
            **kw,
        }
    )


def post_images(url: str, n: int) -> list[tuple[int, float]]:
    out = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/suggest", files={"image": ("x.jpg", jpeg())})
            out.append((r.status_code, time.perf_counter() - t0))
    return out


def test_the_server_publishes_every_queue_wait(moto_url: str) -> None:
    app = create_app(cw_settings(moto_url, "EmojiNetE2E"), predictor=FakePredictor())
    with ThreadedServer(app) as srv:
        assert [code for code, _ in post_images(srv.url, 6)] == [200] * 6
        dims = {"AutoScalingGroupName": "asg-e2e"}
        got: dict[str, float] = {}
        for _ in range(100):
            got = stats(moto_url, "EmojiNetE2E", "GPUQueueWait", dims)
            if got.get("SampleCount") == 6:
                break
            time.sleep(0.1)
        assert got["SampleCount"] == 6, got
        assert 0 <= got["Minimum"] <= got["Maximum"] < 1000
        assert stats(moto_url, "EmojiNetE2E", "RequestCount", dims)["Sum"] == 6
        assert stats(moto_url, "EmojiNetE2E", "QueueDepth", dims)["SampleCount"] >= 1
        backlog = stats(moto_url, "EmojiNetE2E", "Backlog", dims)  # target tracking's metric
        assert backlog["SampleCount"] >= 1 and backlog["Minimum"] >= 0


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts TCP connections and never answers (a hung endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["refused", "hung"])
def test_a_dead_cloudwatch_never_touches_requests(kind: str, blackhole: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}" if kind == "refused" else blackhole
    # A long queue deadline: a stall of the loaded test machine must not turn into a 503 here.
    settings = cw_settings(endpoint, "EmojiNetDead", cloudwatch_max_buffer=5, queue_deadline_s=30)
    with ThreadedServer(create_app(settings, predictor=FakePredictor())) as srv:
        state: ServiceState = srv.server.config.app.state.service  # type: ignore[attr-defined]
        pub = state.cloudwatch
        assert pub is not None
        pub.max_backoff_s = 0.2  # fail often during the test
        # A request that waited on a hung publish would take this long; the bound below stays
        # under it with room for a loaded 2-core machine (full-suite runs saw a 0.92 s answer,
        # and once a non-200, with 0.5 s here and the 1 s queue deadline).
        pub.flush_timeout_s = 3.0
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < 2.5:  # over several publish intervals and failures
            answers += post_images(srv.url, 5)
        slow = [(code, round(seconds, 2)) for code, seconds in answers if seconds >= 0.3]
        assert all(code == 200 for code, _ in answers), slow
        assert max(seconds for _, seconds in answers) < 2.5, f"waited on CloudWatch? {slow}"
        if kind == "refused":
            assert pub.failures >= 2
            text = httpx.get(f"{srv.url}/metrics").text
            assert 'emojinet_cloudwatch_publishes_total{outcome="error"}' in text
        assert pub.buffered <= 5 and pub.dropped > 0, "the buffer must stay bounded"
