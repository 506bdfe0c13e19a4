"""The service's measurements: Prometheus metrics, one registry per app, and who else hears them.

Every HTTP request is counted here, once: the request middleware (and the early refusals of
:mod:`service.admission`) call :meth:`ServiceMetrics.observe_request`, which also tells the
request observers (the CloudWatch publisher).
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["RequestObserver", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Label values come from a closed set, or anyone could grow /metrics with made-up methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


class RequestObserver(Protocol):
    """Told about every answered HTTP request; called on the event loop, so it must not block."""

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None: ...


class ServiceMetrics:
    """The service's metrics; also a :class:`service.gate.GateObserver`."""

    def __init__(self) -> None:
        self.request_observers: list[RequestObserver] = []
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.queue_wait_seconds = Histogram(
            "emojinet_queue_wait_seconds",
            "Time an input waited for the device (arrival → its batch starts), run or expired.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "emojinet_queue_depth", "Inputs waiting for the device now.", registry=r
        )
        self.batch_size = Histogram(
            "emojinet_batch_size", "Inputs per forward pass.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "emojinet_inference_seconds",
            "Duration of one forward pass (a whole batch).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_failures = Counter(
            "emojinet_batch_failures", "Forward passes that raised.", registry=r
        )
        self.rejections = Counter(
            "emojinet_gate_rejections",
            "Inputs refused at admission (overloaded) or dropped before decoding or running "
            "because they could not start in time (deadline).",
            ["reason"],
            registry=r,
        )
        self.admitted_inputs = Gauge(
            "emojinet_admitted_inputs",
            "Images admitted and not yet answered (being read, decoded, queued or run).",
            registry=r,
        )
        self.admitted_bytes = Gauge(
            "emojinet_admitted_bytes", "Body bytes held by admitted requests.", registry=r
        )
        self.held_refusals = Gauge(
            "emojinet_held_refusals", "Refusals waiting out the refusal delay.", registry=r
        )
        self.decode_waiting = Gauge(
            "emojinet_decode_waiting", "Images waiting for a decode slot.", registry=r
        )
        self.requests = Counter(
            "emojinet_requests",
            "HTTP requests by endpoint (route template, or 'unmatched'), method (or 'other') and "
            "status code (499: the client left before its request was read).",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "emojinet_request_duration_seconds",
            "HTTP request duration by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "emojinet_inflight_requests",
            "Inference requests accepted and not yet answered.",
            registry=r,
        )
        self.images = Counter("emojinet_images", "Images answered with suggestions.", registry=r)
        self.cloudwatch_publishes = Counter(
            "emojinet_cloudwatch_publishes",
            "PutMetricData calls by outcome (ok, error).",
            ["outcome"],
            registry=r,
        )
        self.cloudwatch_dropped = Counter(
            "emojinet_cloudwatch_dropped",
            "CloudWatch data points dropped because the buffer was full.",
            registry=r,
        )
        self.ready = Gauge(
            "emojinet_ready", "1 when the model is loaded and not draining.", registry=r
        )

    # -- GateObserver ---------------------------------------------------------------------------

    def queue_wait(self, seconds: float, *, ran: bool) -> None:
        self.queue_wait_seconds.observe(seconds)

    def batch(self, size: int, seconds: float, *, ok: bool) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        if not ok:
            self.batch_failures.inc()

    def depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    # -- HTTP -------------------------------------------------------------------------------------

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (the only place requests are counted)."""
        method = method if method in _METHODS else "other"
        self.requests.labels(endpoint=endpoint, method=method, status=str(status)).inc()
        self.request_duration.labels(endpoint=endpoint).observe(seconds)
        for obs in self.request_observers:
            obs.request(endpoint, method, status, seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
