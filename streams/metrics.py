"""Prometheus metrics of the worker (bounded labels only: topic, outcome, table; never a batch id)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "conductor_worker_events_total",
    "Input messages handled, by topic and outcome (projected, resolved, dead_lettered, rerouted)",
    ["topic", "outcome"],
)
RESOLUTIONS = Counter(
    "conductor_worker_resolutions_total",
    "Pipeline commands answered, by outcome (resolved, failed, redelivered) and reason code",
    ["outcome", "reason_code"],
)
STATE_UPDATES = Counter(
    "conductor_worker_state_updates_total",
    "Completion events folded into the batch_state table, by outcome (changed, unchanged: already known)",
    ["outcome"],
)
DLQ_RECORDS = Counter("conductor_worker_dlq_records_total", "Input messages sent to a dead-letter topic", ["topic"])
RESOLUTION_SECONDS = Histogram(
    "conductor_worker_resolution_seconds",
    "Time from a command's event_timestamp to its outcome events being handed to the producer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TABLE_KEYS = Gauge("conductor_worker_table_keys", "Keys held locally, by table", ["table"])
