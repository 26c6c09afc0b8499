"""One way to start a broker, whichever it is: the embedded Tansu broker or a local Apache Kafka cluster."""

from pathlib import Path

from conductor.broker import EmbeddedBroker
from conductor.kafka_cluster import KafkaCluster

BROKER_KINDS = ("embedded", "kafka")

Broker = EmbeddedBroker | KafkaCluster


def create_broker(
    kind: str, *, port: int | None = None, nodes: int = 1, data_dir: Path | None = None, log_dir: Path | None = None
) -> Broker:
    """Return an unstarted broker of `kind` ("embedded" or "kafka"); use it as a context manager."""
    if kind == "embedded":
        return EmbeddedBroker(port=port, log_path=log_dir / "broker.log" if log_dir else None)
    if kind == "kafka":
        return KafkaCluster(nodes=nodes, port=port, data_dir=data_dir)
    raise ValueError(f"unknown broker {kind!r}; choose one of {', '.join(BROKER_KINDS)}")
