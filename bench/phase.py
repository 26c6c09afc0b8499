"""One benchmark phase: its own fresh broker (embedded or Apache Kafka), topics, probe and working directory."""

import asyncio
import secrets
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bench import procs
from bench.broker_probe import PROBE_TOPIC, probe
from bench.ceilings import PASSTHROUGH_OUT
from bench.procs import Worker, stop_all
from conductor.brokers import BROKER_KINDS, Broker, create_broker
from conductor.kafka_admin import ensure_topics
from conductor.kafka_cluster import free_port_run
from contracts.topics import all_topics

PARTITIONS = 4  # the worker's default topic_partitions
# How long a fetch with nothing new waits, for the bench's own consumers and the broker probe: what the worker
# does on each broker. Tansu answers such a fetch only when the wait runs out, so the local profile waits 5 ms
# (streams/broker_compat.py); Apache Kafka answers as soon as a record arrives, so the production profile keeps
# Faust's 1,500 ms (a short wait there would only spin).
FETCH_WAIT_MS = {"embedded": 5, "kafka": 1500}
# The broker every Phase() starts (`python -m bench --broker`); bench/__main__.py sets it for each pass.
BROKER = "embedded"
# What each phase measured of its broker (start-up, probe, CPU), by phase name; __main__ collects it per pass.
MEASURED: dict[str, dict[str, Any]] = {}


async def wait_leaders(bootstrap: str, topics: list[str], deadline: float) -> None:
    """Wait until every partition of `topics` has a leader (Apache Kafka elects them just after creating a topic:
    a phase started at once would see NotLeaderForPartition retries in its first figures)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        until = time.monotonic() + deadline
        while True:
            described = await admin.describe_topics(topics)
            leaderless = [
                t["topic"] for t in described if t["error_code"] or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not leaderless:
                return
            if time.monotonic() > until:
                raise TimeoutError(f"no leader after {deadline:.0f} s for partitions of {', '.join(leaderless)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def select_broker(kind: str) -> None:
    """Make every following Phase() start a broker of `kind` ("embedded" or "kafka")."""
    global BROKER
    if kind not in BROKER_KINDS:
        raise ValueError(f"unknown broker {kind!r}; choose one of {', '.join(BROKER_KINDS)}")
    BROKER = kind
    MEASURED.clear()


class Phase:
    """A fresh broker per phase: the platform's topic names are fixed, so one phase's events must not leak into
    the next one's consumers. Workers, gateways and ceilings started in it get the broker's service settings."""

    def __init__(self, name: str, root: Path, worker_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.kind = BROKER
        self.workdir = root / name
        self.worker_env = dict(worker_env or {})
        self.broker: Broker = self._create()
        self.fetch_wait_ms = FETCH_WAIT_MS[self.kind]
        self.measured: dict[str, Any] = {"broker": self.kind}
        self._cpu_start = (0.0, 0.0)

    def _create(self) -> Broker:
        if self.kind == "kafka":
            # One node, its own data dir in the phase's work dir, client and controller ports free together.
            return create_broker("kafka", port=free_port_run(), nodes=1, data_dir=self.workdir / "kafka")
        return create_broker("embedded", log_dir=self.workdir)

    def __enter__(self) -> "Phase":
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        procs.track_broker(self.broker)  # stopped by stop_all() whatever ends the run (error, Ctrl-C, SIGTERM)
        try:
            started = time.monotonic()
            self.broker.start()
            self.measured["start_seconds"] = round(time.monotonic() - started, 2)
            topics = [*all_topics(), PASSTHROUGH_OUT, PROBE_TOPIC]
            asyncio.run(ensure_topics(self.broker.bootstrap, topics, PARTITIONS))
            asyncio.run(wait_leaders(self.broker.bootstrap, topics, deadline=60))
            procs.SERVICE_ENV.clear()
            procs.SERVICE_ENV.update(self.broker.service_env(secrets.token_hex(16)))
            try:
                self.measured["probe"] = asyncio.run(probe(self.broker.bootstrap, self.fetch_wait_ms))
            except Exception as exc:  # the probe explains figures; the phase's own measurement does not need it
                print(f"  {self.name}: broker probe failed: {type(exc).__name__}: {exc}", flush=True)
                self.measured["probe_error"] = f"{type(exc).__name__}: {exc}"
            self._cpu_start = (time.monotonic(), procs.cpu_seconds_of(procs.broker_pids(self.broker)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def worker(self, name: str = "worker", **env: str) -> Worker:
        """Return a (not yet started) worker on this phase's broker."""
        return Worker(self.broker, self.workdir, name, **{**self.worker_env, **env})

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        try:
            if self._cpu_start[0]:
                seconds = time.monotonic() - self._cpu_start[0]
                cpu = procs.cpu_seconds_of(procs.broker_pids(self.broker)) - self._cpu_start[1]
                self.measured.update(seconds=round(seconds, 1), cpu_seconds=round(cpu, 2),
                                     cpu_percent=round(100 * cpu / seconds, 1) if seconds else None)  # fmt: skip
                MEASURED[self.name] = self.measured
            stop_all()  # workers first: a worker whose broker vanished spends ~10 s retrying
        finally:
            self.broker.stop()
            procs.untrack_broker(self.broker)
            procs.SERVICE_ENV.clear()
