"""Read the worker's table views over HTTP, with bounded retries; transport failures become our own errors."""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import quote
from uuid import UUID

import aiohttp
import httpx
from pydantic import BaseModel, ValidationError

from contracts.state import BatchChanges, BatchStatusView, RequestOutcome
from gateway.errors import StateUnavailable, WorkerError
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.state_client")

INTERNAL_TOKEN_HEADER = "X-Internal-Token"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class BatchOwner:
    """A registered batch's owner (`user_id` None: registered without owner)."""

    user_id: str | None


class StateClient(Protocol):
    """What routes need from the worker's views (the HTTP client, or a fake in unit tests)."""

    async def batch_status(self, batch_id: str) -> BatchStatusView | None: ...
    async def batch_owner(self, batch_id: str) -> BatchOwner | None: ...
    async def request_outcome(self, batch_id: str, correlation_id: UUID) -> RequestOutcome | None: ...
    async def changes(self, batch_id: str, after: int, wait: float) -> BatchChanges | None: ...
    async def check(self) -> bool: ...
    async def aclose(self) -> None: ...


class WorkerStateClient:
    """httpx client for `GET /batches/{id}` and `GET /batches/{id}/requests/{correlation id}` on the worker.

    A 503 (partitions rebalancing) or a transport error is retried with backoff a bounded number of times, then
    StateUnavailable (503 to the client). Owners of registered batches are cached briefly: ownership does not
    change once BOS registered a batch, and the cache keeps the POST path off the worker for repeated batches.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        token = settings.internal_token.get_secret_value()
        self._client = httpx.AsyncClient(
            base_url=settings.worker_url.rstrip("/"),
            headers={INTERNAL_TOKEN_HEADER: token} if token else {},
            timeout=settings.worker_timeout_seconds,
            transport=transport,
            trust_env=False,  # internal calls never go through an environment-configured proxy
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )
        # Long-polls wait on the worker, one per watched batch: aiohttp, made on first use (it binds the running
        # loop). httpx was measured unfit here: httpcore's pool scans every connection for every request it adds
        # or removes (quadratically in one place), and with ~500 long-polls waiting each new one took ~100 ms of CPU.
        self._polls: aiohttp.ClientSession | None = None
        self._polls_base = settings.worker_url.rstrip("/")
        self._polls_headers = {INTERNAL_TOKEN_HEADER: token} if token else {}
        self._polls_limit = settings.stream_max + 10
        self._polls_timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.worker_timeout_seconds, sock_read=settings.stream_poll_seconds + 10
        )
        self.attempts = settings.worker_attempts
        self.backoff = settings.worker_backoff_seconds
        self.retry_after = settings.retry_after_seconds
        self.cache_seconds = settings.owner_cache_seconds
        self.cache_size = settings.owner_cache_size
        self.metrics = metrics
        self._owners: dict[str, tuple[float, BatchOwner]] = {}

    async def batch_status(self, batch_id: str) -> BatchStatusView | None:
        """Return the batch's projected state, or None when the worker knows no registered batch by this id."""
        response = await self._get("batch_status", f"/batches/{quote(batch_id, safe='')}")
        view = None if response is None else self._parse(BatchStatusView, response)
        if view is None or not view.registered:
            return None
        self._remember(batch_id, BatchOwner(view.user_id))
        return view

    async def batch_owner(self, batch_id: str) -> BatchOwner | None:
        """Return the owner of a registered batch (cached), or None when the batch is unknown."""
        cached = self._owners.get(batch_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        view = await self.batch_status(batch_id)
        return None if view is None else BatchOwner(view.user_id)

    async def request_outcome(self, batch_id: str, correlation_id: UUID) -> RequestOutcome | None:
        """Return how a request ended, or None when the worker has no outcome for it (yet)."""
        path = f"/batches/{quote(batch_id, safe='')}/requests/{correlation_id}"
        response = await self._get("request_outcome", path)
        return None if response is None else self._parse(RequestOutcome, response)

    async def changes(self, batch_id: str, after: int, wait: float) -> BatchChanges | None:
        """Long-poll the worker: the batch's changes once its version differs from `after`, None after `wait` s.

        One attempt (the stream's watch asks again after a pause): StateUnavailable when the worker is unreachable
        or rebalancing, WorkerError when it answers anything else it should not (e.g. the batch is gone).
        """
        if self._polls is None:
            self._polls = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._polls_limit, limit_per_host=0),
                timeout=self._polls_timeout,
                headers=self._polls_headers,
                trust_env=False,
            )
        url = f"{self._polls_base}/batches/{quote(batch_id, safe='')}/changes"
        try:
            async with self._polls.get(url, params={"after": str(after), "wait": str(wait)}) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.worker_calls.labels("batch_changes", "unavailable").inc()
            raise StateUnavailable(f"The batch state service is unreachable ({type(exc).__name__}).") from None
        if status == 204:
            self.metrics.worker_calls.labels("batch_changes", "no_change").inc()
            return None
        if status == 503:
            self.metrics.worker_calls.labels("batch_changes", "unavailable").inc()
            raise StateUnavailable("The batch state service is rebalancing.")
        self._classify("batch_changes", httpx.Response(status))  # counts it; raises on 401/403/5xx
        if status != 200:
            raise WorkerError(f"The batch state service answered HTTP {status} for a watched batch.")
        try:
            return BatchChanges.model_validate_json(body)
        except ValidationError as exc:
            log.error("worker answered a malformed BatchChanges: %s", exc)
            raise WorkerError("The batch state service answered a malformed BatchChanges.") from None

    async def check(self) -> bool:
        """Return whether the worker's `/healthz` answers 200 within a second (readiness)."""
        try:
            response = await self._client.get("/healthz", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._client.aclose()
        if self._polls is not None:
            await self._polls.close()

    def _remember(self, batch_id: str, owner: BatchOwner) -> None:
        if self.cache_seconds <= 0:
            return
        if len(self._owners) >= self.cache_size:
            self._owners.pop(next(iter(self._owners)))  # oldest insertion first
        self._owners[batch_id] = (time.monotonic() + self.cache_seconds, owner)

    async def _get(self, view: str, path: str) -> httpx.Response | None:
        """GET a view with bounded retries; return the 200 response, None for 404, or raise."""
        problem = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.get(path)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
                continue
            if response.status_code == 503:
                problem = "503 (partitions rebalancing)"
                continue
            return self._classify(view, response)
        self.metrics.worker_calls.labels(view, "unavailable").inc()
        log.warning("worker view %s unavailable after %d attempt(s): %s", view, self.attempts, problem)
        raise StateUnavailable(
            "The batch state service is unavailable; retry shortly.", headers={"Retry-After": str(self.retry_after)}
        )

    def _classify(self, view: str, response: httpx.Response) -> httpx.Response | None:
        status = response.status_code
        if status == 200:
            self.metrics.worker_calls.labels(view, "ok").inc()
            return response
        if status == 404:
            self.metrics.worker_calls.labels(view, "not_found").inc()
            return None
        self.metrics.worker_calls.labels(view, "error").inc()
        if status in (401, 403):
            log.error("worker refused the internal token on %s (HTTP %d): check CONDUCTOR_INTERNAL_TOKEN", view, status)
            raise WorkerError("The gateway is not allowed to read the batch state service (internal token).")
        log.error("worker view %s answered HTTP %d", view, status)
        raise WorkerError(f"The batch state service answered HTTP {status}.")

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            log.error("worker answered a malformed %s: %s", model.__name__, exc)
            raise WorkerError(f"The batch state service answered a malformed {model.__name__}.") from None
