"""Worker web views: batch state and request outcomes, routed to the worker that owns the batch."""

import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast
from uuid import UUID

import aiohttp
from faust import web
from faust.web.exceptions import ServiceUnavailable

from streams.app import app, catalog, settings
from tables.batch_state import batch_state, batch_version, read_requests, read_state
from tables.changes import feed
from tables.projection import batch_changes, status_view

INTERNAL_TOKEN_HEADER = "X-Internal-Token"
# Longest long-poll the changes view holds (the gateway asks for less; aiohttp's client timeout is 300 s).
MAX_WAIT_SECONDS = 60.0


def _authorized(request: web.Request) -> bool:
    if not settings.internal_token:
        return True
    given = request.headers.get(INTERNAL_TOKEN_HEADER, "")
    return hmac.compare_digest(given.encode(), settings.internal_token.encode())


def _unauthorized(view: web.View) -> web.Response:
    return view.json({"detail": f"missing or wrong {INTERNAL_TOKEN_HEADER} header"}, status=401)


def _settling() -> bool:
    """Return whether this worker is rebalancing or recovering tables (its tables may be incomplete)."""
    recovered = cast(Any, app.tables).recovery.completed.is_set()
    return bool(app.rebalancing or getattr(app, "in_recovery", False) or not recovered)


Handler = Callable[..., Awaitable[web.Response]]


def _owner_unknown(batch_id: str) -> str | None:
    """Return why the owner of `batch_id` cannot be placed yet (None when it can).

    Right after a worker starts, Faust's router may have no partition metadata for the table's topic yet: its
    `key_store` then raises `TypeError: 'NoneType' object is not iterable`, which `table_route` turned into a 500
    (seen as 502s at the gateway at the start of a cluster-fault run).
    """
    try:
        app.router.key_store(batch_state.name, batch_id)
    except (TypeError, KeyError) as exc:
        return f"the owner of this batch is not known yet (partition metadata loading: {type(exc).__name__})"
    return None


def _owner_unreachable_is_unavailable(handler: Handler) -> Handler:
    """Answer 503 when the worker owning the batch cannot be placed or reached, as Faust does while no owner is known.

    Between a worker's death and the rebalance that moves its partitions (the session timeout), Faust still
    routes reads to it and the failed proxy call became a 500; the gateway then answered 502 instead of the
    retryable 503 (seen killing one of two workers on the 3-node cluster).
    """

    @functools.wraps(handler)
    async def routed(view: web.View, request: web.Request, *args: Any, **kwargs: Any) -> web.Response:
        unknown = _owner_unknown(request.match_info["batch_id"])
        if unknown is not None:
            raise ServiceUnavailable(unknown)
        try:
            return await handler(view, request, *args, **kwargs)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailable(f"the worker owning this batch is unreachable: {type(exc).__name__}") from exc

    return routed


@app.page("/batches/{batch_id}")
@_owner_unreachable_is_unavailable
@app.table_route(table=batch_state, match_info="batch_id")
async def batch_status(view: web.View, request: web.Request, batch_id: str) -> web.Response:
    """Return the batch's projected state and recent requests (404 when nothing is known of it)."""
    if not _authorized(request):
        return _unauthorized(view)
    state, requests = read_state(batch_id), read_requests(batch_id)
    if state is None and requests is None:
        if _settling():
            # This worker may own the batch's partition without having recovered it yet (a worker joined or left):
            # "unknown" is not known yet, so say so retryably instead of a 404 the gateway passes on to the client.
            raise ServiceUnavailable("partitions are being rebalanced or recovered; retry shortly")
        return view.json({"detail": f"unknown batch {batch_id!r}"}, status=404)
    body: Any = status_view(batch_id, state, requests, catalog.step_names).model_dump(mode="json")
    return view.json(body)


@app.page("/batches/{batch_id}/requests/{correlation_id}")
@_owner_unreachable_is_unavailable
@app.table_route(table=batch_state, match_info="batch_id")
async def request_outcome(view: web.View, request: web.Request, batch_id: str, correlation_id: str) -> web.Response:
    """Return the outcome of one pipeline request (404 until the worker has answered it)."""
    if not _authorized(request):
        return _unauthorized(view)
    try:
        wanted = UUID(correlation_id)
    except ValueError:
        return view.json({"detail": "correlation id is not a UUID"}, status=400)
    requests = read_requests(batch_id)
    outcome = requests.find(wanted) if requests else None
    if outcome is None:
        if _settling():
            raise ServiceUnavailable("partitions are being rebalanced or recovered; retry shortly")
        return view.json({"detail": "no outcome for this request (yet)"}, status=404)
    return view.json(outcome.model_dump(mode="json"))


def _changes_query(request: web.Request) -> tuple[int, float] | str:
    try:
        after = int(request.query.get("after", "-1"))
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        return "after must be an integer and wait a number of seconds"
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        return f"wait must be between 0 and {MAX_WAIT_SECONDS:.0f} seconds"
    return after, wait


@app.page("/batches/{batch_id}/changes")
@_owner_unreachable_is_unavailable
@app.table_route(table=batch_state, match_info="batch_id")
async def batch_changes_view(view: web.View, request: web.Request, batch_id: str) -> web.Response:
    """Long-poll: answer the batch's status once its version differs from `after`, or 204 after `wait` seconds.

    `after=-1` (the default) answers at once. A version lower than `after` also answers at once (the caller
    is ahead of this store, e.g. after a rebuild): the gateway then starts over with a snapshot. Waiting costs
    an asyncio.Event per watched batch (tables/changes.py), woken by the agents' writes, never a polling loop.
    """
    if not _authorized(request):
        return _unauthorized(view)
    query = _changes_query(request)
    if isinstance(query, str):
        return view.json({"detail": query}, status=400)
    after, wait = query
    changed_at = 0.0
    deadline = time.monotonic() + wait
    while batch_version(batch_id) == after and (left := deadline - time.monotonic()) > 0:
        changed_at = await feed.wait(batch_id, left) or changed_at
    state, requests = read_state(batch_id), read_requests(batch_id)
    if state is None and requests is None:
        return view.json({"detail": f"unknown batch {batch_id!r}"}, status=404)
    changes = batch_changes(batch_id, state, requests, catalog.step_names, changed_at)
    if changes.status.version == after:
        return view.text("", status=204)
    body: Any = changes.model_dump(mode="json")
    return view.json(body)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # (Faust types receivers positional-only)
async def wake_long_polls(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Answer every waiting long-poll when partitions move: the caller asks again and reaches the new owner."""
    feed.notify_all()


@app.page("/healthz")
async def healthz(view: web.View, request: web.Request) -> web.Response:
    """Readiness: 200 once partitions are assigned and tables recovered, 503 while rebalancing or recovering."""
    recovered = cast(Any, app.tables).recovery.completed.is_set()
    ready = recovered and not app.rebalancing
    body = {"status": "ok" if ready else "starting", "rebalancing": app.rebalancing, "recovered": recovered}
    return view.json(body, status=200 if ready else 503)
