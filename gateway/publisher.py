"""Publish `ClientBatchPipelineRequestV1` commands: one long-lived producer, acks=all, bounded waits."""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Protocol
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, RequestTimedOutError

from conductor.kafka_admin import ensure_topics
from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import GATEWAY_SERVICE, EventEnvelope
from contracts.topics import Topic
from gateway.errors import BrokerUnavailable
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.publisher")

CommandEnvelope = EventEnvelope[ClientBatchPipelineRequestV1]
_RECONNECT_MAX_SECONDS = 10.0
# Readiness says the broker is failing while the latest publish failed less than this long ago (see check()).
_FAILED_PUBLISH_SECONDS = 30.0


class Publisher(Protocol):
    """What routes need from a command publisher (the Kafka one, or a fake in unit tests)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def check(self) -> bool: ...
    async def publish(self, command: ClientBatchPipelineRequestV1) -> CommandEnvelope: ...


def command_envelope(command: ClientBatchPipelineRequestV1) -> CommandEnvelope:
    """Wrap a (validated) command in the platform envelope; its correlation id is the request's."""
    # model_construct: every field is ours and already valid; re-validating cost ~5 µs per request.
    return CommandEnvelope.model_construct(
        event_id=uuid4(),
        event_type=Topic.PIPELINE_COMMAND,
        event_timestamp=datetime.now(UTC),
        source_service=GATEWAY_SERVICE,
        correlation_id=command.client_correlation_id,
        data=command,
        schema_version=1,
        data_schema_uri=None,
        metadata=None,
    )


class KafkaCommandPublisher:
    """Owns the producer: connects in the background (the gateway starts even when the broker is down), then
    publishes each command keyed by batch id and waits for the broker's acknowledgement, at most a bounded time."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.bootstrap = settings.bootstrap_servers
        self.partitions = settings.topic_partitions
        self.replication_factor = settings.topic_replication_factor
        self.timeout_ms = settings.publish_timeout_ms
        self.idempotence = settings.enable_idempotence
        self.linger_ms = settings.linger_ms
        self.retry_after = settings.retry_after_seconds
        self.metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._failed_at: float | None = None  # monotonic time of the latest failed publish, None after a success
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start connecting in the background and return at once."""
        self._connecting = asyncio.create_task(self._connect(), name="gateway-producer-connect")

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            producer: AIOKafkaProducer | None = None
            try:
                # Create the command topic with the configured partition count before producing: an auto-created
                # topic gets the broker default (4 on Tansu) and breaks the worker's co-partitioning.
                await ensure_topics(
                    self.bootstrap,
                    [Topic.PIPELINE_COMMAND],
                    partitions=self.partitions,
                    replication_factor=self.replication_factor,
                    timeout=0,
                )
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id="batch-conductor-gateway",
                    acks="all",
                    enable_idempotence=self.idempotence,
                    request_timeout_ms=self.timeout_ms,
                    linger_ms=self.linger_ms,
                    retry_backoff_ms=100,
                )
                await producer.start()
            except Exception as exc:  # any failure here is retried: the gateway must recover by itself
                if producer is not None:
                    with contextlib.suppress(KafkaError, OSError):
                        await producer.stop()
                expected = isinstance(exc, KafkaError | OSError | TimeoutError)
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "broker %s not reachable (%s: %s); retrying in %.1f s",
                    self.bootstrap,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not expected,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
                continue
            self._producer = producer
            self.metrics.broker_connected.set(1)
            log.info("command producer connected to %s", self.bootstrap)
            return

    async def stop(self) -> None:
        """Stop connecting, flush and close the producer."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self.metrics.broker_connected.set(0)
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout_ms / 1000 + 1):
                    await producer.stop()

    async def check(self) -> bool:
        """Return whether the broker takes commands: the latest publish did not fail (within the last 30 s) and a
        metadata request is answered within a second (readiness)."""
        if self._producer is None:
            return False
        # With two of three brokers lost, the survivor still answers metadata, but no write reaches
        # min.insync.replicas: only the publishes themselves show that the broker does not take commands.
        if self._failed_at is not None and time.monotonic() - self._failed_at < _FAILED_PUBLISH_SECONDS:
            return False
        try:
            async with asyncio.timeout(1.0):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def publish(self, command: ClientBatchPipelineRequestV1) -> CommandEnvelope:
        """Publish one command and wait for acks=all; raise BrokerUnavailable (503) instead of hanging."""
        if self._producer is None:
            self.metrics.publish_failures.labels("not_connected").inc()
            raise BrokerUnavailable(
                "The gateway is not connected to the broker yet; retry shortly.",
                headers={"Retry-After": str(self.retry_after)},
            )
        envelope = command_envelope(command)
        try:
            # One deadline for the whole send. aiokafka bounds each of its waits by request_timeout_ms, but a send
            # can chain several (metadata, then the partition's earlier in-flight batch, then its own): a frozen
            # broker held POSTs for 4x publish_timeout_ms (measured in tests/integration/test_gateway_broker_outage.py).
            # A record cut off here may still reach the topic once the broker answers; the 503 says to retry with
            # the same X-Correlation-ID, and the worker answers a correlation id once.
            async with asyncio.timeout(self.timeout_ms / 1000):
                await self._producer.send_and_wait(
                    Topic.PIPELINE_COMMAND, envelope.model_dump_json().encode(), key=command.batch_id.encode()
                )
        except (KafkaError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError | KafkaTimeoutError | RequestTimedOutError)
            reason = "timeout" if timed_out else "kafka_error"
            self.metrics.publish_failures.labels(reason).inc()
            log.warning("command for batch %s not acknowledged: %s", command.batch_id, type(exc).__name__)
            self._failed_at = time.monotonic()
            raise BrokerUnavailable(
                "The broker did not acknowledge the command in time; retry shortly with the same X-Correlation-ID.",
                headers={"Retry-After": str(self.retry_after)},
            ) from exc
        self._failed_at = None
        self.metrics.count_published(command.requested_pipeline)
        return envelope
