"""Push benchmark: 1,000 concurrent event streams on one gateway (one per batch, so 1,000 long-polls on the worker).

Measured: the time from a state change to its event at the client, the gateway's memory per open stream, and the
worker's CPU while the long-polls wait. A state change is a pipeline request resolved by the worker: the client
POSTs it for a random batch of the 1,000 and times the `request` event with status `resolved` on that batch's
stream. That latency is an upper bound: it includes the POST, Kafka and the worker's resolution. The part from the
worker's table write to the gateway writing the event is the gateway's `gateway_push_lag_seconds` histogram (the
worker stamps each long-poll answer with its write time; same host, same clock).
"""

import asyncio
import contextlib
import json
import random
import time
from typing import Any

import aiohttp
import httpx

from bench.gateway_bench import Gateway, _percentiles, _registered_worker, token
from bench.observe import Progress, parse_metrics
from bench.phase import Phase

STREAMS = 1000
CHANGE_RATE = 20  # state changes per second
CHANGE_SECONDS = 15
IDLE_SECONDS = 10
PUSH_ENV = {
    "CONDUCTOR_GATEWAY_STREAM_MAX_PER_CLIENT": "5000",
    "CONDUCTOR_GATEWAY_STREAM_MAX": "5000",
    "CONDUCTOR_GATEWAY_RATE_LIMIT_BATCH_EVENTS": "1000000/second",
    "CONDUCTOR_GATEWAY_RATE_LIMIT_BATCH_STATUS": "1000000/second",
}


class Streams:
    """STREAMS open event streams, each read by its own task; `resolved[cid]` = when its resolved event arrived.

    The reader is aiohttp: httpx's pool (httpcore) spends time quadratic in its open connections per new request.
    """

    def __init__(self, base_url: str, bearer: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {bearer}"},
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        )
        self.opened = 0
        self.snapshots = 0
        self.resolved: dict[str, float] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[str] = []

    async def _read(self, batch: str, started: asyncio.Event) -> None:
        try:
            async with self.session.get(f"{self.base_url}/v1/batches/{batch}/events") as response:
                if response.status != 200:
                    self.errors.append(f"{response.status}: {(await response.read())[:200]!r}")
                    return
                self.opened += 1
                started.set()
                event = ""
                async for raw in response.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "snapshot":
                        self.snapshots += 1
                    elif line.startswith("data: ") and event == "request":
                        data = json.loads(line[6:])
                        if data["status"] == "resolved":
                            self.resolved.setdefault(data["correlation_id"], time.monotonic())
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.errors.append(type(exc).__name__)
        finally:
            started.set()

    async def open(self, batches: list[str]) -> None:
        progress = Progress(f"push: open {len(batches)} streams", len(batches), "streams")
        for chunk in range(0, len(batches), 50):
            events = []
            for batch in batches[chunk : chunk + 50]:
                started = asyncio.Event()
                self.tasks.append(asyncio.create_task(self._read(batch, started)))
                events.append(started)
            await asyncio.gather(*(e.wait() for e in events))
            progress.update(self.opened)
        deadline = time.monotonic() + 60
        while self.snapshots < self.opened and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        progress.done(self.opened, f"{self.snapshots} snapshots, {len(self.errors)} errors")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.session.close()


async def _changes(gateway_url: str, bearer: str, batches: list[str], streams: Streams) -> dict[str, Any]:
    """POST pipeline requests at CHANGE_RATE for CHANGE_SECONDS; time each one to its resolved event."""
    rng = random.Random(11)
    sent: dict[str, float] = {}
    failed: list[str] = []
    progress = Progress(f"push: {CHANGE_RATE} state changes/s for {CHANGE_SECONDS} s", CHANGE_RATE * CHANGE_SECONDS)
    async with httpx.AsyncClient(
        base_url=gateway_url, headers={"Authorization": f"Bearer {bearer}"}, timeout=30, trust_env=False
    ) as client:
        start = time.monotonic()

        async def request(batch: str) -> None:
            t0 = time.monotonic()
            try:
                answer = await client.post(f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": "nlp"})
            except httpx.HTTPError as exc:
                failed.append(type(exc).__name__)
                return
            if answer.status_code == 202:
                sent[answer.json()["correlation_id"]] = t0
            else:
                failed.append(str(answer.status_code))

        posts = []
        for i in range(CHANGE_RATE * CHANGE_SECONDS):  # open loop: the rate holds whatever the latency
            await asyncio.sleep(max(0.0, start + i / CHANGE_RATE - time.monotonic()))
            posts.append(asyncio.create_task(request(rng.choice(batches))))
            progress.update(i + 1)
        await asyncio.gather(*posts)
    deadline = time.monotonic() + 15
    while len(set(sent) & set(streams.resolved)) < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    latencies = sorted((streams.resolved[c] - t) * 1000 for c, t in sent.items() if c in streams.resolved)
    progress.done(len(latencies), f"{len(latencies)} of {len(sent)} resolved events arrived")
    return {
        "sent": len(sent),
        "failed_posts": failed,
        "arrived": len(latencies),
        "latency_ms": _percentiles(latencies) if latencies else {},
    }


def _histogram_quantiles(metrics_text: str, name: str) -> dict[str, float | None]:
    """Return p50 / p99 (ms) of a Prometheus histogram, as the upper edge of the bucket that holds them."""
    buckets = sorted(
        (float(labels["le"]), value)
        for metric, labels, value in parse_metrics(metrics_text)
        if metric == f"{name}_bucket" and labels.get("le") not in (None, "+Inf")
    )
    total = next((v for m, _, v in parse_metrics(metrics_text) if m == f"{name}_count"), 0.0)
    out: dict[str, float | None] = {"count": total}
    for q in (0.5, 0.99):
        out[f"p{int(q * 100)}_ms_at_most"] = next((le * 1000 for le, v in buckets if v >= q * total), None)
    return out


async def _measure(phase: Phase, gateway: Gateway, worker: Any, batches: list[str]) -> dict[str, Any]:
    bearer = token()
    result: dict[str, Any] = {"streams": STREAMS, "batches": len(batches)}
    worker_cpu0, t0 = worker.cpu_seconds(), time.monotonic()
    await asyncio.sleep(IDLE_SECONDS)
    result["worker_idle_cpu_percent"] = 100 * (worker.cpu_seconds() - worker_cpu0) / (time.monotonic() - t0)
    gateway_rss0 = gateway.rss_bytes()

    streams = Streams(gateway.url, bearer)
    try:
        opening = time.monotonic()
        await streams.open(batches)
        result["open_seconds"] = round(time.monotonic() - opening, 1)
        result["opened"], result["errors"] = streams.opened, streams.errors[:5]
        await asyncio.sleep(2)
        result["gateway_rss_before_bytes"], result["gateway_rss_open_bytes"] = gateway_rss0, gateway.rss_bytes()
        result["gateway_bytes_per_stream"] = (result["gateway_rss_open_bytes"] - gateway_rss0) / max(1, streams.opened)
        worker_cpu0, gateway_cpu0, t0 = worker.cpu_seconds(), gateway.cpu_seconds(), time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        elapsed = time.monotonic() - t0
        result["worker_waiting_cpu_percent"] = 100 * (worker.cpu_seconds() - worker_cpu0) / elapsed
        result["gateway_waiting_cpu_percent"] = 100 * (gateway.cpu_seconds() - gateway_cpu0) / elapsed
        result["worker_long_poll_cpu_percent"] = (
            result["worker_waiting_cpu_percent"] - result["worker_idle_cpu_percent"]
        )
        result["changes"] = await _changes(gateway.url, bearer, batches, streams)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            text = (await client.get(f"{gateway.url}/metrics")).text
        result["push_lag"] = _histogram_quantiles(text, "gateway_push_lag_seconds")
    finally:
        await streams.close()
    return result


def push(phase: Phase) -> dict[str, Any]:
    """1,000 streams: latency from a state change to the client, gateway memory per stream, worker CPU waiting."""
    worker, batches = _registered_worker(phase, "push-", STREAMS)
    gateway = Gateway(phase, worker.url)
    gateway.env.update(PUSH_ENV)
    gateway.start()
    gateway.wait_http(f"{gateway.url}/readyz", 60)  # producer connected, worker reachable
    try:
        result = asyncio.run(_measure(phase, gateway, worker, batches))
    finally:
        gateway.stop()
        worker.stop()
    lat = result["changes"]["latency_ms"]
    print(
        f"  push: {result['opened']} streams; POST -> resolved event p50 {lat.get('p50', float('nan')):.1f} ms, "
        f"p99 {lat.get('p99', float('nan')):.1f} ms; worker write -> gateway event p50 <= "
        f"{result['push_lag']['p50_ms_at_most']} ms, p99 <= {result['push_lag']['p99_ms_at_most']} ms; "
        f"{result['gateway_bytes_per_stream'] / 1024:.1f} KiB per stream; worker CPU for waiting long-polls "
        f"{result['worker_long_poll_cpu_percent']:.1f}% of a core",
        flush=True,
    )
    return result
