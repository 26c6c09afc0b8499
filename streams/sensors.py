"""Faust's Prometheus sensor with its labelled metric children remembered (the same metrics, names and values).

Faust's `PrometheusMonitor` calls prometheus_client's `labels()` for every message, stream event, table read and
write and send: a lookup by label values each time, and a regular expression over the stream's label per event.
In the worker's profile that was ~13% of its busy samples (sensors) and ~9% (prometheus_client); the children are
few (one per topic, partition, stream, table and operation), so they are looked up once.
"""

import functools
from typing import Any

from faust.sensors.prometheus import PrometheusMonitor, setup_prometheus_sensors
from faust.types import AppT, EventT, StreamT
from faust.types.tuples import TP, Message


class CachedPrometheusMonitor(PrometheusMonitor):
    """PrometheusMonitor whose per-event metric children are looked up once."""

    @functools.cache  # noqa: B019 - one monitor per process; its children live as long as the registry
    def _child(self, metric: str, **labels: Any) -> Any:
        return getattr(self._metrics, metric).labels(**labels)

    @functools.cache  # noqa: B019 - a handful of streams per process
    def _stream_child(self, stream: StreamT[Any]) -> Any:
        return self._child("total_events_per_stream", stream=f"stream.{self._stream_label(stream)}.events")

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """Call before message is delegated to streams."""
        super(PrometheusMonitor, self).on_message_in(tp, offset, message)
        self._metrics.messages_received.inc()
        self._metrics.active_messages.inc()
        self._child("messages_received_per_topics", topic=tp.topic).inc()
        self._child("messages_received_per_topics_partition", topic=tp.topic, partition=tp.partition).set(offset)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        """Call when stream starts processing an event."""
        state = super(PrometheusMonitor, self).on_stream_event_in(tp, offset, stream, event)
        self._metrics.total_events.inc()
        self._metrics.total_active_events.inc()
        self._stream_child(stream).inc()
        return state

    def on_table_get(self, table: Any, key: Any) -> None:
        """Call when value in table is retrieved."""
        super(PrometheusMonitor, self).on_table_get(table, key)
        self._child("table_operations", table=f"table.{table.name}", operation=self.KEYS_RETRIEVED).inc()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """Call when new value for key in table is set."""
        super(PrometheusMonitor, self).on_table_set(table, key, value)
        self._child("table_operations", table=f"table.{table.name}", operation=self.KEYS_UPDATED).inc()

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> Any:
        """Call when message added to producer buffer."""
        self._child("topic_messages_sent", topic=f"topic.{topic}").inc()
        return super(PrometheusMonitor, self).on_send_initiated(producer, topic, message, keysize, valsize)


def setup_sensors(app: AppT, name_prefix: str) -> None:
    """Set up Faust's Prometheus sensors and page (`/metrics`), with the cached monitor."""
    setup_prometheus_sensors(app, name_prefix=name_prefix)
    metrics = app.monitor._metrics  # type: ignore[attr-defined]
    app.monitor = CachedPrometheusMonitor(metrics=metrics)
