"""The broker the test session runs on (`--broker embedded|kafka`), and more brokers of the same kind."""

import os
import secrets
from pathlib import Path

from conductor.brokers import BROKER_KINDS, Broker, create_broker
from conductor.kafka_cluster import service_env

# Chosen once per session by tests/conftest.py (option --broker, or CONDUCTOR_TEST_BROKER).
SELECTED = {"kind": "embedded", "kafka_nodes": 1}


def select(kind: str, kafka_nodes: int) -> None:
    """Choose the session's broker and put its service settings in the environment every test process inherits."""
    if kind not in BROKER_KINDS:
        raise ValueError(f"--broker must be one of {', '.join(BROKER_KINDS)}")
    SELECTED.update(kind=kind, kafka_nodes=kafka_nodes)
    # Workers and gateways started by tests take os.environ first, then their own test-specific settings.
    if kind == "kafka":
        os.environ.update(service_env(kafka_nodes, secrets.token_hex(16)))


def kind() -> str:
    """Return the session's broker kind."""
    return str(SELECTED["kind"])


def new_broker(log_dir: Path | None, port: int | None = None) -> Broker:
    """Return an unstarted broker of the session's kind (a context manager); a Kafka cluster keeps its data there."""
    if kind() == "kafka" and log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        return create_broker("kafka", port=port, nodes=int(SELECTED["kafka_nodes"]), data_dir=log_dir / "kafka")
    return create_broker(kind(), port=port, nodes=int(SELECTED["kafka_nodes"]), log_dir=log_dir)
