"""Publish the device queue wait to CloudWatch, off the request path.

The request path only adds numbers to in-memory statistic sets (O(1), no I/O). A background
task rolls them up every ``interval_s`` into ``PutMetricData`` data points under the namespace
(default ``EmojiNet``):

* ``GPUQueueWait`` (Milliseconds): a statistic set (SampleCount, Sum, Minimum, Maximum) of every
  input's wait for the device, including inputs dropped at the deadline;
* ``QueueDepth`` (Count): a statistic set of the queue depth sampled once a second;
* ``RequestCount`` (Count): inference requests (``POST /suggest``, ``/distribution``) answered
  in the interval, refusals included (told by :class:`~service.metrics.ServiceMetrics`, which
  sees every request);
* ``Backlog`` (Count): a statistic set of queued + in-flight inputs sampled once a second.
  Its Average over the group is the per-instance backlog that target tracking holds at a
  target: it falls as instances are added, which a raw queue-wait time does not promise.

Each is published with the configured dimensions (e.g. ``AutoScalingGroupName`` and
``InstanceId``; on EC2 missing ones are read from the instance metadata) and, when an Auto
Scaling group is known, once more with ``AutoScalingGroupName`` alone: the series a target
tracking policy on the group reads.

CloudWatch being down, slow, throttling or refusing credentials never touches a request:
calls run in a worker thread with short timeouts, failures are logged and counted, retried
with exponential backoff, and the buffer of unsent data points is bounded (oldest dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.admission import ADMITTED_PATHS
from service.metrics import ServiceMetrics

__all__ = ["CloudWatchPublisher", "StatisticSet", "instance_dimensions"]

log = logging.getLogger(__name__)

ASG_DIMENSION = "AutoScalingGroupName"
_CHUNK = 20  # data points per PutMetricData call (well under every API limit)
_IMDS = "http://169.254.169.254/latest"
_UNITS = {
    "GPUQueueWait": "Milliseconds",
    "QueueDepth": "Count",
    "RequestCount": "Count",
    "Backlog": "Count",
}


@dataclass
class StatisticSet:
    """SampleCount / Sum / Minimum / Maximum of the values added since the last reset."""

    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def to_aws(self) -> dict[str, float]:
        return {
            "SampleCount": float(self.count),
            "Sum": self.total,
            "Minimum": self.minimum,
            "Maximum": self.maximum,
        }


def instance_dimensions(timeout_s: float = 0.5) -> dict[str, str]:
    """``InstanceId`` and ``AutoScalingGroupName`` from EC2 instance metadata (IMDSv2).

    Returns what it could read; ``{}`` quietly when not on EC2. The group name needs instance
    metadata tags enabled on the launch template.
    """
    out: dict[str, str] = {}
    try:
        req = urllib.request.Request(
            f"{_IMDS}/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            token = resp.read().decode()
        for key, path in (
            ("InstanceId", "meta-data/instance-id"),
            (ASG_DIMENSION, "meta-data/tags/instance/aws:autoscaling:groupName"),
        ):
            with contextlib.suppress(OSError):
                req = urllib.request.Request(
                    f"{_IMDS}/{path}", headers={"X-aws-ec2-metadata-token": token}
                )
                with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                    out[key] = resp.read().decode().strip()
    except OSError:
        log.debug("no EC2 instance metadata here; publishing without instance dimensions")
    return out


class CloudWatchPublisher:
    """Aggregates queue waits into statistic sets and publishes them from a background task.

    Also a :class:`service.gate.GateObserver`.

    Args:
        client_factory: returns a boto3 CloudWatch client; called once, in a worker thread.
        dimensions: fixed dimensions; completed from instance metadata when
            ``use_instance_metadata`` (keys given here win).
    """

    def __init__(
        self,
        *,
        client_factory: Callable[[], Any],
        namespace: str = "EmojiNet",
        interval_s: float = 60.0,
        high_resolution: bool = False,
        dimensions: Mapping[str, str] | None = None,
        use_instance_metadata: bool = False,
        max_buffer: int = 10_000,
        metrics: ServiceMetrics | None = None,
        max_backoff_s: float = 300.0,
        call_timeout_s: float = 10.0,
    ) -> None:
        self.namespace = namespace
        self.interval_s = interval_s
        self.high_resolution = high_resolution
        self.dimensions = dict(dimensions or {})
        self.use_instance_metadata = use_instance_metadata
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self.call_timeout_s = call_timeout_s
        self.flush_timeout_s = 5.0  # on shutdown
        self._client_factory = client_factory
        self._client: Any = None
        self._wait = StatisticSet()
        self._depth = StatisticSet()
        self._current_depth = 0
        self._backlog = StatisticSet()
        # Queued + in-flight inputs right now; set by the app once the device gate exists.
        self.backlog_source: Callable[[], int] | None = None
        self._requests = 0
        self._buffer: deque[dict[str, Any]] = deque()
        self._max_buffer = max_buffer
        self._task: asyncio.Task[None] | None = None
        # Its own thread: a hung endpoint never occupies the loop's default executor.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cloudwatch")
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        self.published = 0  # data points accepted by CloudWatch
        self.failures = 0  # PutMetricData calls that failed
        self.dropped = 0  # data points dropped because the buffer was full

    @classmethod
    def from_settings(
        cls, settings: Any, metrics: ServiceMetrics | None = None
    ) -> CloudWatchPublisher:
        """Build from :class:`service.settings.Settings` (boto3 is imported lazily)."""

        def factory() -> Any:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=2,
                read_timeout=5,
                retries={"total_max_attempts": 1},  # we retry ourselves, with backoff
            )
            return boto3.client(
                "cloudwatch",
                region_name=settings.cloudwatch_region or None,
                endpoint_url=settings.cloudwatch_endpoint_url or None,
                config=config,
            )

        return cls(
            client_factory=factory,
            namespace=settings.cloudwatch_namespace,
            interval_s=settings.cloudwatch_interval_s,
            high_resolution=settings.cloudwatch_high_resolution,
            dimensions=settings.cloudwatch_dimensions,
            use_instance_metadata=settings.cloudwatch_use_instance_metadata,
            max_buffer=settings.cloudwatch_max_buffer,
            metrics=metrics,
        )

    # -- the request path: in-memory only --------------------------------------------------------

    def queue_wait(self, seconds: float, *, ran: bool) -> None:
        self._wait.add(seconds * 1000.0)

    def batch(self, size: int, seconds: float, *, ok: bool) -> None:
        pass

    def depth(self, depth: int) -> None:
        self._current_depth = depth

    def rejected(self, reason: str) -> None:
        pass

    # -- RequestObserver --------------------------------------------------------------------------

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        if method == "POST" and endpoint in ADMITTED_PATHS:
            self._requests += 1

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- the background task ---------------------------------------------------------------------

    async def start(self) -> None:
        """Build the boto3 client, then start publishing in the background.

        The client is built here, before the app takes traffic: building it loads botocore's
        service models, which holds the GIL for a good part of a second in its worker thread and
        would otherwise stall the first requests. A failure is logged and retried at the first
        publish.
        """
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._make_client)
        except Exception as exc:
            log.warning("CloudWatch client not built yet (%s: %s)", type(exc).__name__, exc)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="cloudwatch")

    async def stop(self, *, flush: bool = True) -> None:
        """Stop the task and, with ``flush``, try once to send everything left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if flush:
            self.roll()
            self._retry_at = 0.0
            try:
                await asyncio.wait_for(self.send_pending(), self.flush_timeout_s)
            except TimeoutError:
                log.warning("CloudWatch flush timed out; %d data points unsent", self.buffered)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self) -> None:
        if self.use_instance_metadata:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(self._executor, instance_dimensions)
            self.dimensions = {**found, **self.dimensions}
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.interval_s)
        next_roll = loop.time() + self.interval_s
        sender: asyncio.Task[None] | None = None  # sending never delays the roll-ups
        try:
            while True:
                await asyncio.sleep(tick)
                self._depth.add(float(self._current_depth))
                if self.backlog_source is not None:
                    self._backlog.add(float(self.backlog_source()))
                if loop.time() >= next_roll:
                    late = math.ceil((loop.time() - next_roll) / self.interval_s)
                    next_roll += self.interval_s * max(1, late)
                    self.roll()
                if self._buffer and (sender is None or sender.done()):
                    sender = loop.create_task(self._send_safely())
        finally:
            if sender is not None:
                sender.cancel()

    async def _send_safely(self) -> None:
        try:
            await self.send_pending()
        except Exception:  # never let the publisher die
            log.exception("CloudWatch publisher: unexpected error")

    def roll(self) -> None:
        """Turn the current aggregates into buffered data points and start new ones."""
        stamp = datetime.now(UTC)
        wait, self._wait = self._wait, StatisticSet()
        depth, self._depth = self._depth, StatisticSet()
        backlog, self._backlog = self._backlog, StatisticSet()
        requests, self._requests = self._requests, 0
        for dims in self._dimension_sets():
            base: dict[str, Any] = {"Dimensions": dims, "Timestamp": stamp}
            if self.high_resolution:
                base["StorageResolution"] = 1
            if wait.count:
                stats = wait.to_aws()
                self._push({**base, "MetricName": "GPUQueueWait", "StatisticValues": stats})
            if depth.count:
                stats = depth.to_aws()
                self._push({**base, "MetricName": "QueueDepth", "StatisticValues": stats})
            if backlog.count:
                stats = backlog.to_aws()
                self._push({**base, "MetricName": "Backlog", "StatisticValues": stats})
            self._push({**base, "MetricName": "RequestCount", "Value": float(requests)})

    def _dimension_sets(self) -> list[list[dict[str, str]]]:
        full = [{"Name": k, "Value": v} for k, v in sorted(self.dimensions.items())]
        sets = [full]
        asg = self.dimensions.get(ASG_DIMENSION)
        if asg and len(full) > 1:
            sets.append([{"Name": ASG_DIMENSION, "Value": asg}])
        return sets

    def _push(self, datum: dict[str, Any]) -> None:
        datum["Unit"] = _UNITS[datum["MetricName"]]
        if len(self._buffer) >= self._max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.cloudwatch_dropped.inc()
        self._buffer.append(datum)

    async def send_pending(self) -> None:
        """Send buffered data points in chunks; on a failure keep them and back off."""
        while self._buffer and time.monotonic() >= self._retry_at:
            chunk = [self._buffer[i] for i in range(min(_CHUNK, len(self._buffer)))]
            try:
                loop = asyncio.get_running_loop()
                put = loop.run_in_executor(self._executor, self._put, chunk)
                await asyncio.wait_for(put, self.call_timeout_s)
            except Exception as exc:
                self._failed(exc)
                return
            for datum in chunk:  # (the oldest may have been dropped while we sent)
                if self._buffer and self._buffer[0] is datum:
                    self._buffer.popleft()
            self.published += len(chunk)
            self._failures_in_a_row = 0
            if self.metrics is not None:
                self.metrics.cloudwatch_publishes.labels(outcome="ok").inc()

    def _make_client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _put(self, chunk: list[dict[str, Any]]) -> None:
        self._make_client().put_metric_data(Namespace=self.namespace, MetricData=chunk)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._failures_in_a_row += 1
        if self.metrics is not None:
            self.metrics.cloudwatch_publishes.labels(outcome="error").inc()
        backoff = min(self.max_backoff_s, self.interval_s * 2 ** (self._failures_in_a_row - 1))
        backoff *= random.uniform(0.5, 1.0)  # jitter: a fleet does not retry in lock step
        self._retry_at = time.monotonic() + backoff
        level = logging.WARNING if self._failures_in_a_row <= 3 else logging.DEBUG
        log.log(
            level,
            "CloudWatch PutMetricData failed (%s: %s); %d data points kept, retrying in %.1f s",
            type(exc).__name__,
            exc,
            self.buffered,
            backoff,
        )
