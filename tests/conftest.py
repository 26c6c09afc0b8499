"""Shared fixtures: the broker (one per test session, embedded or Apache Kafka) and the platform's sample messages."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.brokers import BROKER_KINDS, Broker
from tests.support import brokers

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
REPO = Path(__file__).resolve().parent.parent


def sample(generation: str, name: str) -> dict[str, Any]:
    """Return one of the platform's sample messages as a dict."""
    return json.loads((SAMPLES / generation / f"{name}.json").read_text())


def sample_bytes(generation: str, name: str) -> bytes:
    """Return one of the platform's sample messages as the bytes Kafka carries."""
    return (SAMPLES / generation / f"{name}.json").read_bytes()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        choices=BROKER_KINDS,
        default=os.environ.get("CONDUCTOR_TEST_BROKER", "embedded"),
        help="broker the integration tests run on: embedded (Tansu) or kafka (Apache Kafka, KRaft) "
        "[env CONDUCTOR_TEST_BROKER, default embedded]",
    )
    parser.addoption(
        "--kafka-nodes",
        type=int,
        choices=(1, 3),
        default=int(os.environ.get("CONDUCTOR_TEST_KAFKA_NODES", "1")),
        help="nodes of the Apache Kafka cluster [env CONDUCTOR_TEST_KAFKA_NODES, default 1]",
    )


def pytest_configure(config: pytest.Config) -> None:
    brokers.select(config.getoption("--broker"), config.getoption("--kafka-nodes"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"broker: {brokers.kind()}"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Start the session's real broker once; a missing binary or tool (java, mvn) fails, never skips."""
    with brokers.new_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running
