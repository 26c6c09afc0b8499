"""Shared fixtures: the embedded broker (one per test session) and the platform's sample messages."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.broker import EmbeddedBroker

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
REPO = Path(__file__).resolve().parent.parent


def sample(generation: str, name: str) -> dict[str, Any]:
    """Return one of the platform's sample messages as a dict."""
    return json.loads((SAMPLES / generation / f"{name}.json").read_text())


def sample_bytes(generation: str, name: str) -> bytes:
    """Return one of the platform's sample messages as the bytes Kafka carries."""
    return (SAMPLES / generation / f"{name}.json").read_bytes()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """Start the real embedded broker once per session; a missing binary fails, never skips."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running
