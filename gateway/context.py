"""Per-request context: the correlation id and the audit facts routes add, carried on the ASGI scope."""

import ipaddress
from collections.abc import Sequence
from contextvars import ContextVar
from uuid import UUID, uuid4

from starlette.requests import HTTPConnection
from starlette.types import Scope

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCOPE_KEY = "conductor.context"

# Read by the log formatter so every line logged while serving a request carries its correlation id.
correlation_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class RequestContext:
    """What the gateway knows about the request being served; dependencies and routes fill in the audit facts."""

    __slots__ = ("authorization", "client", "code", "correlation_id", "headers", "pipeline", "started", "user")

    def __init__(
        self, correlation_id: UUID, started: float, client: str = "unknown", authorization: bytes | None = None
    ) -> None:
        self.correlation_id = correlation_id
        self.started = started
        self.client = client
        self.authorization = authorization  # the raw Authorization header, found while scanning headers once
        self.user: str | None = None
        self.pipeline: str | None = None
        self.code: str | None = None
        # Extra response headers (RateLimit-*), added by the middleware to whatever response goes out.
        self.headers: list[tuple[bytes, bytes]] = []


def parse_correlation_id(raw: bytes | None) -> UUID | None:
    """Return the client's `X-Correlation-ID` when it is a valid UUID, else None."""
    if not raw or len(raw) > 64:
        return None
    try:
        return UUID(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def request_context(conn: HTTPConnection) -> RequestContext:
    """Return the context the observability middleware put on this request (a fresh one when it did not run)."""
    return scope_context(conn.scope)


def scope_context(scope: Scope) -> RequestContext:
    """Return the request context stored on an ASGI scope, creating one if missing."""
    ctx = scope.get(SCOPE_KEY)
    if ctx is None:
        ctx = scope[SCOPE_KEY] = RequestContext(uuid4(), 0.0)
    assert isinstance(ctx, RequestContext)
    return ctx


def client_address(scope: Scope, trusted: Sequence[IpNetwork]) -> str:
    """Return the client's address; `X-Forwarded-For` counts only when the peer is a trusted proxy.

    The header is read right to left, skipping trusted proxies: the first untrusted hop is the client
    (entries further left are client-supplied and could be forged).
    """
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    address = peer
    for hop in reversed(hops):
        if not _valid_ip(hop):
            break  # garbage: keep the last address a trusted proxy vouched for
        address = hop
        if not _trusted(hop, trusted):
            break
    return address


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trusted(address: str, trusted: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
