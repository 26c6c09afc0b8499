"""The batch's event stream (Server-Sent Events) and the stream ticket a browser's EventSource opens it with."""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from gateway.context import request_context
from gateway.deps import Call, admitted, get_services
from gateway.models import StreamTicket
from gateway.openapi import problem_responses
from gateway.routes.pipelines import BatchId, owned_batch

router = APIRouter(prefix="/v1", tags=["batches"])

EVENT_STREAM = "text/event-stream"
MAX_VERSION = 2**53 - 1  # event ids stay exact in JavaScript numbers
STREAM_DESCRIPTION = """\
A `text/event-stream` of the batch's changes as the worker records them. Every event has an `id:` (the batch's
version, an integer), an `event:` type and one line of JSON `data:`:

- `snapshot`: exactly the body of `GET /v1/batches/{batch_id}/status`. First on every new stream, and first after
  a `Last-Event-ID` that cannot be resumed without a gap.
- `request`: exactly the body of `GET /v1/batches/{batch_id}/pipelines/{correlation_id}`, once per changed request
  (`pending` when this gateway accepted it, then `resolved` or `failed`).
- `progress`: `{"batch_id": ..., "steps": [...]}`, the `steps` of the status, when step progress changes.

Comment lines (`: heartbeat`) keep idle connections open. A reconnect with the `Last-Event-ID` header (browsers
send it by themselves) or `?last_event_id=` continues after that version without a gap, or begins with a snapshot.
The stream ends after `CONDUCTOR_GATEWAY_STREAM_MAX_SECONDS` and when the gateway shuts down; reconnect and resume.

**Authentication**: `Authorization: Bearer <JWT>` (fetch-based readers), or `?ticket=` from
`POST /v1/batches/{batch_id}/events/ticket` for `EventSource`, which cannot send headers. Errors before the stream
starts are problem+json, as for the status; `429` also when the client has too many open streams, `503` when the
gateway has.
"""

Ticket = Annotated[
    str | None,
    # A credential, not data: any value that is not a valid ticket is 401, never 422 (OpenAPI: a security scheme).
    Query(description="A stream ticket (`POST .../events/ticket`), instead of the Authorization header."),
]
LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,15}$",
        description="Resume after this event id (browsers send the last one they saw when they reconnect).",
    ),
]
LastEventIdQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_VERSION, description="Resume after this event id (as the `Last-Event-ID` header)."),
]


@dataclass(frozen=True, slots=True)
class StreamCall:
    """An admitted stream request and the version it resumes after (None: start with a snapshot)."""

    call: Call
    cursor: int | None


async def admit_stream(
    request: Request,
    batch_id: BatchId,
    ticket: Ticket = None,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamCall:
    """Authenticate by ticket when one is given, else as every other call; rate limit; check the batch's owner.

    The parameters are declared here, not on the route, so that FastAPI validates them (422) before anything else.
    """
    services, ctx = get_services(request), request_context(request)
    if not ticket:
        call = await admitted("batch_events")(request)
    else:
        principal = services.tickets.verify(ticket, batch_id)
        ctx.user = principal.sub
        key = f"sub:{principal.sub}" if principal.authenticated else f"ip:{ctx.client}"
        ctx.headers = await services.limiter.check("batch_events", key)
        call = Call(services, principal, ctx)
    await owned_batch(call, batch_id, act=False)
    cursor = int(last_event_id_header) if last_event_id_header is not None else last_event_id
    return StreamCall(call, cursor)


@router.get(
    "/batches/{batch_id}/events",
    response_class=StreamingResponse,
    summary="Follow a batch's changes as they happen (Server-Sent Events)",
    description=STREAM_DESCRIPTION,
    responses={
        200: {
            "description": "The event stream (it stays open; see above).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404, 422, 429, 502, 503),
    },
)
async def stream_batch_events(
    batch_id: BatchId, admitted: Annotated[StreamCall, Depends(admit_stream)]
) -> StreamingResponse:
    """Open the batch's event stream."""
    call, cursor = admitted.call, admitted.cursor
    hub, ctx = call.services.push, call.context
    client = f"sub:{call.principal.sub}" if call.principal.authenticated else f"ip:{ctx.client}"
    slot = hub.reserve(client)  # given back when the stream ends
    return StreamingResponse(
        hub.stream(batch_id, slot, cursor),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # no proxy buffering
    )


@router.post(
    "/batches/{batch_id}/events/ticket",
    response_model=StreamTicket,
    summary="Get a short-lived ticket that opens this batch's event stream (for EventSource)",
    description=(
        "`EventSource` cannot send an Authorization header: open `events_url` instead. The ticket names the caller "
        "and this batch, opens only this batch's event stream, and expires after `expires_in` seconds (a "
        "reconnect after that needs a new ticket). Same authentication, ownership and errors as the status."
    ),
    responses=problem_responses(401, 403, 404, 422, 429, 502, 503),
)
async def create_stream_ticket(
    batch_id: BatchId, call: Annotated[Call, Depends(admitted("batch_events"))]
) -> StreamTicket:
    """Issue a stream ticket for the caller and the batch."""
    await owned_batch(call, batch_id, act=False)
    tickets = call.services.tickets
    ticket = tickets.issue(call.principal, batch_id)
    return StreamTicket(
        ticket=ticket,
        expires_in=tickets.ttl,
        events_url=f"/v1/batches/{quote(batch_id, safe='')}/events?ticket={ticket}",
    )
