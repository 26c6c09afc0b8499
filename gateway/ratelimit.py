"""Per-client, per-endpoint rate limits on the `limits` library (memory storage, or Redis for several replicas)."""

import logging
import math
import time

from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from gateway.errors import RateLimited
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.ratelimit")

STRATEGIES: dict[str, type[SlidingWindowCounterRateLimiter | FixedWindowRateLimiter | MovingWindowRateLimiter]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}


def _storage(uri: str) -> Storage:
    """Build the async storage for a `memory://` or `redis://…` URI (the `async+` prefix is implied)."""
    if not uri.startswith("async+"):
        uri = f"async+{uri}"
    options: dict[str, str | bool] = {"wrap_exceptions": True}
    if uri.startswith(("async+redis", "async+rediss")):
        options["implementation"] = "redispy"  # the `redis` package (extra `[redis]`), not coredis
    try:
        storage = storage_from_string(uri, **options)
    except ConfigurationError as exc:  # e.g. redis:// without the `redis` package (extra `[redis]`)
        raise ValueError(f"rate-limit storage: {exc}") from None
    assert isinstance(storage, Storage)
    return storage


class Limiter:
    """Check and count one request against every window of an endpoint's limit; refuse with 429 when over."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.enabled = settings.rate_limit_enabled
        self.metrics = metrics
        self.limits = settings.rate_limits()
        self.storage = _storage(settings.ratelimit_storage)
        self.strategy: RateLimiter = STRATEGIES[settings.rate_limit_strategy](self.storage)
        # Precomputed per endpoint: the RateLimit-Policy header (draft-ietf-httpapi-ratelimit-headers).
        self.policies = {
            name: ", ".join(f"{item.amount};w={item.get_expiry()}" for item in items).encode()
            for name, items in self.limits.items()
        }

    async def check(self, endpoint: str, client_key: str) -> list[tuple[bytes, bytes]]:
        """Count a request of `client_key` on `endpoint`; return the RateLimit headers or raise RateLimited."""
        if not self.enabled:
            return []
        now = time.time()
        binding: tuple[RateLimitItem, int, float] | None = None
        try:
            for item in self.limits[endpoint]:
                allowed = await self.strategy.hit(item, endpoint, client_key)
                reset_at, remaining = await self.strategy.get_window_stats(item, endpoint, client_key)
                if not allowed:
                    self._refuse(endpoint, item, reset_at, now)
                if binding is None or remaining < binding[1]:
                    binding = (item, remaining, reset_at)
        except StorageError as exc:
            # Fail open: an unreachable shared storage must not take the API down with it.
            self.metrics.rate_limit_errors.inc()
            log.warning("rate-limit storage failed (%s); request let through", exc)
            return []
        assert binding is not None
        item, remaining, reset_at = binding
        return [
            (b"ratelimit-limit", b"%d" % item.amount),
            (b"ratelimit-remaining", b"%d" % max(0, remaining)),
            (b"ratelimit-reset", b"%d" % max(0, math.ceil(reset_at - now))),
            (b"ratelimit-policy", self.policies[endpoint]),
        ]

    def _refuse(self, endpoint: str, item: RateLimitItem, reset_at: float, now: float) -> None:
        retry_after = max(1, math.ceil(reset_at - now))
        self.metrics.rate_limited.labels(endpoint).inc()
        raise RateLimited(
            f"Rate limit of {item.amount} per {item.get_expiry()} s exceeded; retry in {retry_after} s.",
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Limit": str(item.amount),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(retry_after),
                "RateLimit-Policy": self.policies[endpoint].decode(),
            },
            extra={"retry_after": retry_after},
        )

    async def reset(self) -> None:
        """Forget every counter (tests)."""
        await self.storage.reset()
