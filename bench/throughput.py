"""Throughput end to end: an open-loop client at 1,000 requests/s for 30 s through one gateway and two workers.

Every request is a `POST /v1/batches/{id}/pipelines` (auth mode jwt, as in production) with its own
`X-Correlation-ID`, sent at its scheduled instant whatever the answers before it did (open loop: a slow system
gets the same offered load, and the client does not wait for it). A Kafka consumer in the same process reads the
resolved (and resolution-failed) events. Latency runs from the request's scheduled send time to its event read
(so a client that falls behind shows up in the figures instead of hiding the wait: no coordinated omission);
the latency from the actual send is kept too.

CPU per request for each process (gateway, each worker, the broker, this client): user+system time over the
phase (first send to last answer, psutil on their pids), divided by the requests the gateway accepted; plus each
process's CPU % every second, to tell which one saturates when the offered rate is not sustained.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import psutil

from bench.gateway_bench import STATE_UPDATES, AnswerReader, Gateway, _histogram, _percentiles, token
from bench.observe import Progress, counter_reader, time_drain
from bench.phase import Phase
from bench.procs import Service, broker_pids
from bench.workload import Messages, feed, registrations

RATE = 1_000
SECONDS = 30
BATCHES = 1_000
DRAIN_SECONDS = 30
CONNECTIONS = 256
BODY = b'{"requested_pipeline":"nlp"}'


class CpuWatch:
    """CPU time (user+system, all threads) of named processes: totals over a window, and % of a core per second."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.procs = {name: [psutil.Process(p) for p in ps] for name, ps in pids.items() if ps}
        self.timeline: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def totals(self) -> dict[str, float]:
        """Return each process group's CPU seconds so far."""
        out = {}
        for name, procs in self.procs.items():
            seconds = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    seconds += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            out[name] = seconds
        return out

    def _sample(self) -> None:
        last, at = self.totals(), time.monotonic()
        while not self._stop.wait(1.0):
            now, t = self.totals(), time.monotonic()
            self.timeline.append({k: round(100 * (now[k] - last[k]) / (t - at), 1) for k in now})
            last, at = now, t

    def start(self) -> dict[str, float]:
        """Start sampling every second; return the totals at the start."""
        self._thread.start()
        return self.totals()

    def stop(self) -> dict[str, float]:
        """Stop sampling; return the totals at the end."""
        self._stop.set()
        self._thread.join()
        return self.totals()


async def _warm(url: str, bearer: str, batches: Sequence[str]) -> None:
    """POST once per batch (32 at a time): owners into the gateway's cache, connections and code paths warm."""
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(url, headers=headers) as session:
        queue = list(batches)

        async def run() -> None:
            while queue:
                batch = queue.pop()
                async with session.post(f"/v1/batches/{batch}/pipelines", data=BODY) as response:
                    if response.status != 202:
                        raise RuntimeError(f"gateway answered {response.status}: {(await response.text())[:300]}")

        await asyncio.gather(*(run() for _ in range(32)))


async def _open_loop(
    url: str, bootstrap: str, batches: Sequence[str], rate: int, seconds: int, on_start: Callable[[], None]
) -> dict[str, Any]:
    total = rate * seconds
    intended: dict[str, float] = {}
    sent: dict[str, float] = {}
    http_ms: list[float] = []
    statuses: dict[str, int] = {}
    reader = await AnswerReader(bootstrap, "bench-throughput", 5, intended).start()
    done = reader.done
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)
    progress = Progress(f"throughput: {rate} req/s for {seconds} s", total, "answered")
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as session:

        async def post(i: int, corr: str) -> None:
            sent[corr] = time.monotonic()
            try:
                async with session.post(
                    f"/v1/batches/{batches[i % len(batches)]}/pipelines", data=BODY, headers={"X-Correlation-ID": corr}
                ) as response:
                    await response.read()
                    key = str(response.status)
                http_ms.append((time.monotonic() - sent[corr]) * 1000)
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1

        on_start()
        started = time.monotonic()
        tasks = []
        for i in range(total):
            at = started + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            corr = str(uuid.uuid4())
            intended[corr] = at
            tasks.append(asyncio.create_task(post(i, corr)))
            if i % rate == 0:
                progress.update(len(done))
        last_send = time.monotonic()
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + DRAIN_SECONDS
        while len(done) < total and time.monotonic() < deadline:
            progress.update(len(done))
            await asyncio.sleep(0.1)
    await reader.close()
    progress.done(len(done))
    if not done:
        raise RuntimeError(f"no resolved event was read; HTTP statuses {statuses}")
    latencies = sorted((done[c] - intended[c]) * 1000 for c in done)
    from_sent = sorted((done[c] - sent[c]) * 1000 for c in done)
    lag = sorted((sent[c] - intended[c]) * 1000 for c in sent)
    by_second: dict[int, float] = {}
    for c in done:
        second = int(intended[c] - started)
        by_second[second] = max(by_second.get(second, 0.0), (done[c] - intended[c]) * 1000)
    return {
        "target_rps": rate,
        "seconds": seconds,
        "requests": total,
        "offered_rps": total / (last_send - started),
        "answered": len(done),
        "unanswered": total - len(done),
        "failed_answers": reader.failed_answers,
        "http_statuses": statuses,
        "phase_seconds_measured": max(done.values()) - started,
        "latency_ms": _percentiles(latencies),
        "latency_from_sent_ms": _percentiles(from_sent),
        "http_answer_ms": _percentiles(sorted(http_ms)) if http_ms else None,
        "client_send_lag_ms": _percentiles(lag),
        "histogram": _histogram(latencies),
        "max_ms_by_second": [round(by_second.get(i, 0.0), 1) for i in range(seconds + 1)],
    }


def throughput(phase: Phase) -> dict[str, Any]:
    """1,000 req/s for 30 s, open loop, through one gateway (auth jwt) and two workers; CPU per request each."""
    workers = [phase.worker("worker-1"), phase.worker("worker-2")]
    for worker in workers:
        worker.start_ready()
    batches = [f"tp-{i}" for i in range(BATCHES)]
    feed(phase.broker.bootstrap, registrations(Messages(seed=29), batches, 3))
    readers = [counter_reader(f"{w.url}/metrics", STATE_UPDATES) for w in workers]
    time_drain(lambda: sum(read() for read in readers), BATCHES, 120,
               Progress(f"throughput: register {BATCHES} batches on 2 workers", BATCHES, "batches"))  # fmt: skip
    gw = Gateway(phase, workers[0].url).start()
    gw.wait_http(f"{gw.url}/readyz", 60)  # producer connected (on Kafka after InitProducerId)
    asyncio.run(_warm(gw.url, token(), batches))
    time.sleep(2.0)  # let the workers answer the warm-up's commands before the clock starts
    services: list[Service] = [gw, *workers]
    watch = CpuWatch(
        {
            **{s.name: [s.pid] for s in services},
            "broker": broker_pids(phase.broker),
            "client": [psutil.Process().pid],
        }
    )
    marks: dict[str, Any] = {}

    def on_start() -> None:
        marks["cpu0"], marks["t0"] = watch.start(), time.monotonic()

    result = asyncio.run(_open_loop(gw.url, phase.broker.bootstrap, batches, RATE, SECONDS, on_start))
    cpu1, elapsed = watch.stop(), time.monotonic() - marks["t0"]
    gw.stop()
    # The work unit is a request the gateway accepted (202): requests that timed out in the client's queue or
    # were refused with 503 cost little, and dividing by them would flatter an overloaded run.
    accepted = max(1, result["http_statuses"].get("202", 0))
    cpu = {}
    for name, end in cpu1.items():
        seconds = end - marks["cpu0"][name]
        cpu[name] = {
            "cpu_seconds": round(seconds, 2),
            "cpu_percent": round(100 * seconds / elapsed, 1),
            "us_per_request": round(1e6 * seconds / accepted, 1),
            "peak_percent": max((row.get(name, 0.0) for row in watch.timeline), default=0.0),
        }
    total_us = sum(c["us_per_request"] for c in cpu.values())
    result.update(
        {
            "window_seconds": round(elapsed, 1),
            "cpu_us_per_request_all": round(total_us, 1),
            # What the machine's cores could carry if every process got all the CPU it needs and nothing else ran.
            "cpu_bound_rps": round(psutil.cpu_count() * 1e6 / total_us) if total_us else None,
            "busiest": max(cpu, key=lambda name: cpu[name]["cpu_percent"]),
            "cpu": cpu,
            "cpu_timeline_percent": watch.timeline,
            "machine_load_average": list(psutil.getloadavg()),
            "goals": {
                "throughput_unanswered": result["unanswered"],
                "throughput_p99_ms": result["latency_ms"]["p99"],
            },
        }
    )
    return result


def summary_lines(t: dict[str, Any]) -> list[str]:
    """Return the phase's figures for the report, one line each."""
    lat, sent, http = t["latency_ms"], t["latency_from_sent_ms"], t["http_answer_ms"] or {"p50": 0.0, "p99": 0.0}
    cpu = "; ".join(
        f"{name} {c['us_per_request']:.0f} µs ({c['cpu_percent']:.0f}% of a core, peak {c['peak_percent']:.0f}%)"
        for name, c in t["cpu"].items()
    )
    return [
        f"throughput: {t['requests']:,} requests offered at {t['offered_rps']:,.0f} req/s (target {t['target_rps']:,}),"
        f" {t['answered']:,} answered, HTTP {t['http_statuses']}; POST -> resolved event p50 {lat['p50']:.1f} ms,"
        f" p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms from the scheduled send (from the actual send: p50 "
        f"{sent['p50']:.1f}, p99 {sent['p99']:.1f} ms; client send lag p99 {t['client_send_lag_ms']['p99']:.1f} ms;"
        f" POST -> 202 p50 {http['p50']:.1f}, p99 {http['p99']:.1f} ms)",
        f"throughput, CPU per accepted request over {t['window_seconds']:.0f} s (user+system): {cpu}; all processes "
        f"{t['cpu_us_per_request_all']:.0f} µs per request, so this machine's cores carry at most "
        f"{t['cpu_bound_rps']} req/s end to end; busiest: {t['busiest']}; load average {t['machine_load_average']}",
    ]
