"""The worker's cached Prometheus sensor (streams/sensors.py) records exactly what Faust's own does."""

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types.tuples import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.sensors import CachedPrometheusMonitor


class _Owner:
    pass


class _Stream:
    shortlabel = "Stream: Topic: huleedu.commands.batch.pipeline.v1"
    task_owner = _Owner()


def _drive(monitor: Any) -> None:
    streams = [_Stream(), _Stream()]
    table = SimpleNamespace(name="batch_state")
    for i in range(50):
        tp = TP(f"topic-{i % 3}", i % 4)
        monitor.on_message_in(tp, i, SimpleNamespace(time_in=None))
        monitor.on_stream_event_in(tp, i, streams[i % 2], object())
        monitor.on_table_get(table, b"k")
        if i % 2:
            monitor.on_table_set(table, b"k", b"v")
        monitor.on_send_initiated(None, f"out-{i % 2}", None, 1, 1)


def _samples(monitor_class: type[PrometheusMonitor]) -> bytes:
    registry = CollectorRegistry()
    monitor = monitor_class(metrics=FaustMetrics.create(registry, "conductor_faust"))
    _drive(monitor)
    # `*_created` samples are the creation times of the metrics: the rest must match.
    return b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line)


def test_the_cached_monitor_records_the_same_samples_as_faust_s() -> None:
    cached = _samples(CachedPrometheusMonitor)
    reads = b'conductor_faust_table_operations_total{operation="keys_retrieved",table="table.batch_state"} 50.0'
    assert reads in cached
    assert cached == _samples(PrometheusMonitor)
