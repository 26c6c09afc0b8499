"""The Kafka publisher without a broker: envelope shape, not-connected and broker errors become 503s."""

import json
from typing import Any
from uuid import UUID

import pytest
from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import EventEnvelope
from gateway.errors import BrokerUnavailable
from gateway.metrics import GatewayMetrics
from gateway.publisher import KafkaCommandPublisher, command_envelope
from tests.unit.gateway.kit import settings

CID = UUID("2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11")
COMMAND = ClientBatchPipelineRequestV1(
    batch_id="b1", requested_pipeline="nlp", client_correlation_id=CID, user_id="teacher-1"
)


def test_envelope_round_trips_through_the_contract() -> None:
    envelope = command_envelope(COMMAND)
    wire = envelope.model_dump_json()
    assert EventEnvelope[ClientBatchPipelineRequestV1].model_validate_json(wire) == envelope
    doc = json.loads(wire)
    assert set(doc) == {
        "event_id", "event_type", "event_timestamp", "source_service", "schema_version", "correlation_id",
        "data_schema_uri", "data", "metadata",
    }  # fmt: skip
    assert doc["correlation_id"] == doc["data"]["client_correlation_id"] == str(CID)
    assert command_envelope(COMMAND).event_id != envelope.event_id


async def test_not_connected_yet_is_broker_unavailable() -> None:
    with pytest.raises(BrokerUnavailable, match="not connected"):
        await KafkaCommandPublisher(settings(), GatewayMetrics()).publish(COMMAND)


class FailingProducer:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.sent: list[tuple[Any, ...]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, key, value))
        raise self.error


@pytest.mark.parametrize("error", [RequestTimedOutError(), KafkaTimeoutError()])
async def test_broker_errors_become_503_and_are_counted(error: Exception) -> None:
    metrics = GatewayMetrics()
    publisher = KafkaCommandPublisher(settings(retry_after_seconds=7), metrics)
    producer = FailingProducer(error)
    publisher._producer = producer  # type: ignore[assignment]
    with pytest.raises(BrokerUnavailable) as caught:
        await publisher.publish(COMMAND)
    assert caught.value.headers == {"Retry-After": "7"}
    [(topic, key, _)] = producer.sent
    assert (topic, key) == ("huleedu.commands.batch.pipeline.v1", b"b1")
    assert 'gateway_publish_failures_total{reason="timeout"} 1.0' in metrics.render().decode()


class Metadata:
    async def fetch_all_metadata(self) -> None:
        return None


class FlakyProducer(FailingProducer):
    """Fails while `error` is set, else acknowledges; its metadata requests always succeed."""

    client = Metadata()

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, key, value))
        if self.error is not None:
            raise self.error


async def test_readiness_fails_while_the_latest_publish_failed_though_metadata_answers() -> None:
    # Two of three brokers lost: the survivor answers metadata, but no command reaches min.insync.replicas.
    publisher = KafkaCommandPublisher(settings(), GatewayMetrics())
    producer = FlakyProducer(RequestTimedOutError())
    publisher._producer = producer  # type: ignore[assignment]
    assert await publisher.check()
    with pytest.raises(BrokerUnavailable):
        await publisher.publish(COMMAND)
    assert not await publisher.check()
    producer.error = None  # type: ignore[assignment]
    await publisher.publish(COMMAND)
    assert await publisher.check()
