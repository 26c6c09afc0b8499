"""Gateway benchmarks: POST req/s and latency vs a bare FastAPI endpoint, and end-to-end latency at a steady rate.

The gateway runs as `conductor gateway` (auth mode jwt with an HS256 secret, rate limit set far above the load,
Prometheus metrics on, its audit log on) next to a real worker that holds the batches it is asked about. wrk
drives the POST benchmark (closed loop, fixed connections); the end-to-end benchmark is an open-loop Python
client at a fixed request rate plus a Kafka consumer of the resolved events.
"""

import asyncio
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
from aiokafka import AIOKafkaConsumer

from bench import procs
from bench.observe import Progress, counter_reader, time_drain
from bench.phase import Phase
from bench.procs import REPO, Service, Worker
from bench.workload import OWNER, Messages, feed, registrations
from conductor.broker import free_port
from contracts.topics import Topic

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
ISSUER = "https://id.bench.local"
AUDIENCE = "batch-conductor"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"
CONNECTIONS = 32
SECONDS = 10
E2E_RATE = 200
E2E_SECONDS = 20
BATCHES = 200
STATE_UPDATES = "conductor_worker_state_updates_total"


def token(sub: str = OWNER) -> str:
    """Return a valid HS256 JWT for the gateway (an hour long)."""
    now = int(time.time())
    claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def gateway_env() -> dict[str, str]:
    """Return the gateway's environment: auth on, rate limits far above the load, metrics on, logs to a file."""
    return {
        "CONDUCTOR_GATEWAY_AUTH_MODE": "jwt",
        "CONDUCTOR_GATEWAY_JWT_SECRET": SECRET,
        "CONDUCTOR_GATEWAY_JWT_ISSUER": ISSUER,
        "CONDUCTOR_GATEWAY_JWT_AUDIENCE": AUDIENCE,
        "CONDUCTOR_GATEWAY_RATE_LIMIT_ENABLED": "true",
        "CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE": "1000000/second",
        "CONDUCTOR_GATEWAY_LOG_LEVEL": "WARNING",
        "CONDUCTOR_PIPELINES_FILE": str(REPO / "pipelines.yaml"),
    }


class Gateway(Service):
    """A real `conductor gateway` subprocess (under py-spy with `--profile`, like the workers)."""

    def __init__(self, phase: Phase, worker_url: str, name: str = "gateway", **env: str) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "conductor.cli", "gateway", "--broker", phase.broker.url,
                "--worker-url", worker_url, "--port", str(self.port)]  # fmt: skip
        if procs.PROFILE_DIR is not None:
            procs.PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            out = procs.PROFILE_DIR / f"{phase.workdir.name}-{name}.collapsed.txt"
            argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "200", "--format", "raw",
                    "--output", str(out), "--", *argv]  # fmt: skip
        super().__init__(name, argv, {**gateway_env(), **env}, phase.workdir / f"{name}.log")
        self.profiled = procs.PROFILE_DIR is not None

    @property
    def url(self) -> str:
        """Return the gateway's base URL."""
        return f"http://127.0.0.1:{self.port}"


class BareApi(Service):
    """The bare FastAPI ceiling (bench/bare_api.py)."""

    def __init__(self, phase: Phase) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "bench.bare_api", "--port", str(self.port)]
        super().__init__("bare-api", argv, {}, phase.workdir / "bare-api.log")

    @property
    def url(self) -> str:
        """Return the base URL."""
        return f"http://127.0.0.1:{self.port}"


def _registered_worker(phase: Phase, prefix: str, count: int) -> tuple[Worker, list[str]]:
    """Start a worker and register `count` batches owned by the bench's token subject."""
    worker = phase.worker()
    worker.start_ready()
    batches = [f"{prefix}{i}" for i in range(count)]
    records = registrations(Messages(seed=23), batches, 3)
    feed(phase.broker.bootstrap, records)
    progress = Progress(f"{phase.name}: register {count} batches", count, "batches")
    time_drain(counter_reader(f"{worker.url}/metrics", STATE_UPDATES), count, 120, progress)
    return worker, batches


def _wrk(url: str, seconds: int, bearer: str, prefix: str, batches: int, label: str) -> dict[str, Any]:
    """Run wrk against `url`; return its figures."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs it: apt-get install -y wrk)")
    env = {"BENCH_TOKEN": bearer, "BENCH_PREFIX": prefix, "BENCH_BATCHES": str(batches), "PATH": "/usr/bin:/bin"}
    progress = Progress(label, None, "")
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url],
        capture_output=True, text=True, env=env, timeout=seconds + 60, check=False,
    )  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    out: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    out["rps"] = out["requests"] / out["duration_s"]
    pct = dict((p, v) for p, v in out["percentiles_ms"])
    out["p50_ms"], out["p99_ms"] = pct[50], pct[99]
    progress.done(out["requests"], f"{out['rps']:,.0f} req/s, p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms, "
                                   f"non-2xx {out['non_2xx']}")  # fmt: skip
    return out


def none_env() -> dict[str, str]:
    """Return configuration (b): auth mode none and every other setting at its default, except the rate limit."""
    return {
        "CONDUCTOR_GATEWAY_AUTH_MODE": "none",
        "CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE": "1000000/second",
        "CONDUCTOR_PIPELINES_FILE": str(REPO / "pipelines.yaml"),
    }


def _warm(gw: Gateway, bearer: str, batches: Sequence[str]) -> None:
    """POST once per batch: every batch's owner into the gateway's cache (30 s), connections, code paths."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=10) as client:
        for batch in batches:
            response = client.post(f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": "nlp"})
            if response.status_code != 202:
                raise RuntimeError(f"{gw.name} answered {response.status_code}: {response.text[:300]}")


def _measure(gw: Gateway, bearer: str, prefix: str, batches: int, label: str) -> dict[str, Any]:
    """wrk against one gateway (2 s warm-up, then the run); the gateway's CPU per request over the run."""
    _wrk(gw.url, 2, bearer, prefix, batches, f"{label}: wrk warm-up")
    cpu = gw.cpu_seconds()
    out = _wrk(gw.url, SECONDS, bearer, prefix, batches, f"{label}: wrk POST, {CONNECTIONS} connections")
    out["cpu_us_per_request"] = (gw.cpu_seconds() - cpu) / max(1, out["requests"]) * 1e6
    return out


def gateway(phase: Phase) -> dict[str, Any]:
    """Gateway POST req/s and latency vs a bare FastAPI endpoint (no Kafka), in two configurations in one run:
    (a) auth jwt, rate limit far above the load, metrics and audit log on; (b) auth none, every other setting at
    its default except the rate limit."""
    prefix = "gw-"
    worker, batches = _registered_worker(phase, prefix, BATCHES)
    # (b) is measured first, within its default 30 s owner cache; (a) keeps its owners for 120 s, so that they
    # are still cached when its turn comes (a cache hit costs the same whatever its lifetime).
    configs = [
        (Gateway(phase, worker.url, name="gateway-none", **none_env()), "", "gateway (auth none)"),
        (Gateway(phase, worker.url, CONDUCTOR_GATEWAY_OWNER_CACHE_SECONDS="120"), token(), "gateway (jwt)"),
    ]
    for gw, bearer, _ in reversed(configs):
        gw.start()
        gw.wait_http(f"{gw.url}/readyz", 60)  # producer connected (on Kafka after InitProducerId), worker reachable
        _warm(gw, bearer, batches)
    # The worker would otherwise resolve the flood of commands on the same two cores: it is not under test here.
    # Both gateways answer from their owner caches (warmed just above) meanwhile.
    worker.stop()
    measured = {}
    for gw, bearer, label in configs:
        measured[gw.name] = _measure(gw, bearer, prefix, len(batches), label)
        gw.stop()
    bare = BareApi(phase).start()
    bare.wait_http(f"{bare.url}/healthz", 30)
    _wrk(bare.url, 2, "", prefix, len(batches), "bare FastAPI: wrk warm-up")
    cpu = bare.cpu_seconds()
    baseline = _wrk(bare.url, SECONDS, "", prefix, len(batches), f"bare FastAPI: wrk POST, {CONNECTIONS} connections")
    baseline["cpu_us_per_request"] = (bare.cpu_seconds() - cpu) / max(1, baseline["requests"]) * 1e6
    bare.stop()
    return {
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "gateway": measured["gateway"],
        "gateway_none": measured["gateway-none"],
        "bare": baseline,
    }


class AnswerReader:
    """Read the resolved and resolution-failed events from their end on; stamp the first answer to each correlation
    id of `wanted` (read when the answer arrives, so entries added later still count)."""

    def __init__(self, bootstrap: str, group: str, fetch_wait_ms: int, wanted: dict[str, float]) -> None:
        self.consumer = AIOKafkaConsumer(
            Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED,
            bootstrap_servers=bootstrap, group_id=f"{group}-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="latest", fetch_max_wait_ms=fetch_wait_ms, enable_auto_commit=False,
        )  # fmt: skip
        self.wanted = wanted
        self.done: dict[str, float] = {}
        self.failed_answers = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, total: int | None = None) -> "AnswerReader":
        """Start reading at the topics' ends; stop by itself once `total` answers are read (None: at close)."""
        await self.consumer.start()
        while not self.consumer.assignment():
            await asyncio.sleep(0.05)
        await self.consumer.seek_to_end()
        self._task = asyncio.create_task(self._read(total))
        return self

    async def _read(self, total: int | None) -> None:
        while not self._stop.is_set():
            fetched = await self.consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            for tp, records in fetched.items():
                for record in records:
                    corr = str(json.loads(record.value or b"{}").get("correlation_id"))
                    if corr in self.wanted and corr not in self.done:
                        self.done[corr] = now
                        self.failed_answers += tp.topic == Topic.PIPELINE_RESOLUTION_FAILED
            if total is not None and len(self.done) >= total:
                self._stop.set()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.consumer.stop()


async def _e2e(
    gateway_url: str, bootstrap: str, batches: Sequence[str], rate: int, seconds: int, fetch_wait_ms: int
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    total = rate * seconds
    reader = await AnswerReader(bootstrap, "bench-e2e", fetch_wait_ms, sent).start(total)
    done = reader.done
    headers = {"Authorization": f"Bearer {token()}"}
    statuses: dict[int | str, int] = {}
    progress = Progress(f"end to end: {rate} req/s for {seconds} s", total, "answered")
    # aiohttp, not httpx: httpcore's pool scans every queued request for each one added or done (quadratic), so
    # once the gateway fell behind for a moment on a loaded machine the client itself stalled (seen: no POST sent
    # for 40 s, the bench's CPU in httpcore's _assign_requests_to_connections).
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(gateway_url, headers=headers, connector=connector, timeout=timeout) as client:

        async def post(i: int) -> None:
            corr = str(uuid.uuid4())
            batch = batches[i % len(batches)]
            sent[corr] = time.monotonic()
            try:
                async with client.post(
                    f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": "nlp"},
                    headers={"X-Correlation-ID": corr},
                ) as response:  # fmt: skip
                    await response.read()
                key: int | str = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:  # counted (the request goes unanswered), not fatal
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

        started = time.monotonic()
        tasks = []
        for i in range(total):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(i)))
            if i % rate == 0:
                progress.update(len(done))
        await asyncio.gather(*tasks)
        achieved = total / (time.monotonic() - started)
        deadline = time.monotonic() + 30
        while len(done) < total and time.monotonic() < deadline:
            progress.update(len(done))
            await asyncio.sleep(0.2)
    await reader.close()
    latencies = sorted((done[c] - sent[c]) * 1000 for c in done)
    start = min(sent.values())
    by_second: dict[int, float] = {}
    for c in done:
        second = int(sent[c] - start)
        by_second[second] = max(by_second.get(second, 0.0), (done[c] - sent[c]) * 1000)
    progress.done(len(done))
    if not latencies:
        raise RuntimeError(f"no resolved event was read; HTTP statuses {statuses}")
    return {
        "target_rps": rate,
        "seconds": seconds,
        "requests": total,
        "achieved_rps": achieved,
        "answered": len(done),
        "failed_answers": reader.failed_answers,
        "http_statuses": statuses,
        "latency_ms": _percentiles(latencies),
        "histogram": _histogram(latencies),
        "max_ms_by_second": [round(by_second.get(i, 0.0), 1) for i in range(seconds + 1)],
    }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    def pct(p: float) -> float:
        return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": values[-1],
            "mean": statistics.fmean(values)}  # fmt: skip


def _histogram(values: Sequence[float], bins: int = 40) -> dict[str, list[float]]:
    low, high = max(min(values), 0.1), max(values)
    ratio = (high / low) ** (1 / bins) if high > low else 2.0
    edges = [low * ratio**i for i in range(bins + 1)]
    counts = [0] * bins
    for v in values:
        i = min(bins - 1, max(0, int(math.log(max(v, low) / low, ratio)) if ratio > 1 else 0))
        counts[i] += 1
    return {"edges_ms": edges, "counts": counts}


def e2e(phase: Phase) -> dict[str, Any]:
    """HTTP POST -> resolved event read by a consumer, at a steady request rate."""
    prefix = "e2e-"
    worker, batches = _registered_worker(phase, prefix, BATCHES)
    gw = Gateway(phase, worker.url).start()
    gw.wait_http(f"{gw.url}/readyz", 60)  # producer connected (on Kafka after InitProducerId), worker reachable
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token()}"}, timeout=10) as client:
        for batch in batches:  # owners into the gateway's cache, as in steady operation
            client.post(f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": "nlp"})
    time.sleep(1.0)
    # The worker's own count of answered commands, every half second: tells a slow worker from a slow reader.
    import threading

    answered: list[tuple[float, float]] = []
    stop = threading.Event()
    read = counter_reader(f"{worker.url}/metrics", "conductor_worker_events_total", outcome="resolved")

    def watch() -> None:
        while not stop.wait(0.5):
            answered.append((time.monotonic(), read()))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = asyncio.run(_e2e(gw.url, phase.broker.bootstrap, batches, E2E_RATE, E2E_SECONDS, phase.fetch_wait_ms))
    finally:
        stop.set()
        watcher.join()
    result["worker_answered_timeline"] = [(round(t - answered[0][0], 1), c) for t, c in answered] if answered else []
    gw.stop()
    worker.stop()
    return result


def push(phase: Phase) -> dict[str, Any]:
    """1,000 event streams on one gateway (bench/push_bench.py)."""
    from bench.push_bench import push as run_push

    return run_push(phase)


def throughput(phase: Phase) -> dict[str, Any]:
    """1,000 req/s end to end through one gateway and two workers (bench/throughput.py)."""
    from bench.throughput import throughput as run_throughput

    return run_throughput(phase)


BENCHES = {"gateway": gateway, "e2e": e2e, "push": push, "throughput": throughput}
