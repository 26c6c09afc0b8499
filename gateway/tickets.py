"""Short-lived stream tickets: how a browser's `EventSource` (which cannot send headers) authenticates a stream.

A ticket is a JWT signed by the gateway (PyJWT, HS256) for one user and one batch, with an audience of its own so
that it opens event streams only (it is refused as a bearer token, and a bearer token is refused as a ticket).
"""

import logging
import secrets
import time
import uuid

import jwt

from gateway.errors import InvalidToken
from gateway.security import REALM, Principal
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.tickets")

AUDIENCE = "batch-conductor:batch-events"
ISSUER = "batch-conductor-gateway"
_ALGORITHM = "HS256"


class StreamTickets:
    """Issue and verify stream tickets."""

    def __init__(self, settings: GatewaySettings) -> None:
        secret = settings.stream_ticket_secret.get_secret_value()
        # Unset: a random key of this process (tickets then open streams on this replica only).
        self._key = secret.encode() if secret else secrets.token_bytes(32)
        self.ttl = settings.stream_ticket_seconds

    def issue(self, principal: Principal, batch_id: str) -> str:
        """Return a ticket for `principal` to open `batch_id`'s event stream within the ticket lifetime."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal.sub,
            "roles": sorted(principal.roles),
            "auth": principal.authenticated,
            "bid": batch_id,
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, ticket: str, batch_id: str) -> Principal:
        """Return who the ticket was issued to; InvalidToken (401) if it is forged, expired or for another batch."""
        try:
            claims = jwt.decode(
                ticket,
                self._key,
                algorithms=[_ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iss", "aud", "sub", "bid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("The stream ticket has expired; ask for a new one.") from None
        except jwt.InvalidTokenError as exc:
            log.info("stream ticket refused: %s", type(exc).__name__)
            raise _invalid("The stream ticket is invalid.") from None
        if claims.get("bid") != batch_id:
            raise _invalid("The stream ticket was issued for another batch.")
        roles = claims.get("roles")
        return Principal(
            sub=str(claims["sub"]),
            roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset(),
            authenticated=bool(claims.get("auth", True)),
        )


def _invalid(detail: str) -> InvalidToken:
    return InvalidToken(detail, headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
