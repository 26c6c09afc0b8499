"""Fixtures for gateway unit tests: the app on fakes, in auth mode none and jwt."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.gateway.kit import Gateway, jwt_settings, running


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    """The gateway in auth mode none, batch `b1` registered to teacher-1."""
    async with running() as gateway:
        gateway.state.register("b1")
        yield gateway


@pytest.fixture
async def jwt_gw() -> AsyncIterator[Gateway]:
    """The gateway in auth mode jwt (HS256), batch `b1` registered to teacher-1, `orphan` without owner."""
    async with running(jwt_settings()) as gateway:
        gateway.state.register("b1")
        gateway.state.register("orphan", user_id=None)
        yield gateway


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[Any, str]:
    """Return (private key, public key PEM) for RS256 tests."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()
