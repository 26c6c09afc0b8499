"""Prometheus metrics of one gateway app, on a registry of its own (several apps can live in one test process)."""

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

PUSH_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Request, rate-limit, publishing and worker-call metrics (labels are bounded: never a batch id)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "gateway_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited_total",
            "Requests refused with 429, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.rate_limit_errors = Counter(
            "gateway_rate_limit_storage_errors_total",
            "Rate-limit storage failures (the request was let through).",
            registry=self.registry,
        )
        self.published = Counter(
            "gateway_commands_published_total",
            "Pipeline commands acknowledged by the broker, by requested pipeline.",
            ["pipeline"],
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "gateway_publish_failures_total",
            "Pipeline commands the broker did not acknowledge, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.worker_calls = Counter(
            "gateway_worker_requests_total",
            "Calls to the worker's views, by view and outcome.",
            ["view", "outcome"],
            registry=self.registry,
        )
        self.broker_connected = Gauge(
            "gateway_broker_connected",
            "1 when the command producer is connected and the command topic exists.",
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "gateway_open_streams", "Event streams open on this gateway.", registry=self.registry
        )
        self.watched_batches = Gauge(
            "gateway_watched_batches", "Batches with a long-poll on the worker (one per batch, shared).",
            registry=self.registry,
        )
        self.stream_events = Counter(
            "gateway_stream_events_total",
            "Server-sent events written to clients, by event type.",
            ["event"],
            registry=self.registry,
        )
        self.streams_refused = Counter(
            "gateway_streams_refused_total",
            "Streams refused by a cap, by cap (client or gateway).",
            ["cap"],
            registry=self.registry,
        )
        self.push_lag = Histogram(
            "gateway_push_lag_seconds",
            "Worker table write -> the change queued to its streams on this gateway (worker clock vs gateway clock).",
            buckets=PUSH_BUCKETS,
            registry=self.registry,
        )

        # Labelled children cached by key: `.labels()` takes a lock and builds tuples on every call.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._published_children: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        children = self._request_children.get((route, method, status))
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.duration.labels(route, method))
            self._request_children[(route, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_published(self, pipeline: str) -> None:
        """Count one acknowledged command."""
        child = self._published_children.get(pipeline)
        if child is None:
            child = self._published_children[pipeline] = self.published.labels(pipeline)
        child.inc()

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
