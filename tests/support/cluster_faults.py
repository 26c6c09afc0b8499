"""Fault tests on a 3-node Apache Kafka cluster: who leads what, the ISR, the active controller, HTTP load
through a real gateway, paced completion events, and the checks every scenario shares (nothing lost, one
distinct answer per command, the crash-free projection)."""

import asyncio
import contextlib
import json
import re
import secrets
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from conductor.broker import BrokerError, free_port
from conductor.kafka_cluster import KafkaCluster, KafkaNode
from contracts.topics import Topic
from tests.support import kafka as kafka_support
from tests.support import messages as m
from tests.support.gateway_process import GatewayProcess
from tests.support.processes import WorkerProcess

ANSWER_TOPICS = [str(Topic.PIPELINE_RESOLVED), str(Topic.PIPELINE_RESOLUTION_FAILED)]
CHANGELOGS = ["batch_conductor-batch_state-changelog", "batch_conductor-pipeline_requests-changelog"]
LEADER_TOPICS = [str(Topic.PIPELINE_COMMAND), *CHANGELOGS]
DEV_USER = "dev-user"  # the gateway's CONDUCTOR_GATEWAY_DEV_USER default (auth mode none)
PIPELINES = ["ai_feedback", "nlp", "cj_assessment", "spellcheck", "comprehensive"]
HIGH_LIMIT = "100000/second"


def report(log_path: Path, text: str) -> None:
    """Print a scenario's figures (pytest -s) and append them to the test's own log."""
    print(f"\n{text}", flush=True)
    with log_path.open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")


# --- cluster inspection -------------------------------------------------------------------------------------------


async def partition_states(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, tuple[int, list[int]]]:
    """Return every partition's (leader, isr) as the cluster's metadata tells it now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {
        TopicPartition(t["topic"], p["partition"]): (int(p["leader"]), list(p["isr"]))
        for t in described
        for p in t["partitions"]
    }


async def busiest_leader(bootstrap: str, topics: Iterable[str]) -> tuple[int, Counter[int]]:
    """Return the node leading most partitions of `topics`, and the count per leader."""
    counts = Counter(leader for leader, _ in (await partition_states(bootstrap, topics)).values())
    return counts.most_common(1)[0][0], counts


async def wait_full_isr(bootstrap: str, topics: Iterable[str], replicas: int, timeout: float) -> float:
    """Wait until every partition of `topics` has `replicas` in-sync replicas; return the seconds it took."""
    topics = list(topics)
    started = time.monotonic()
    last: dict[TopicPartition, tuple[int, list[int]]] = {}
    while time.monotonic() - started < timeout:
        try:
            last = await partition_states(bootstrap, topics)
        except (KafkaError, OSError):
            last = {}
        if last and all(len(isr) == replicas for _, isr in last.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    short = {str(tp): isr for tp, (_, isr) in last.items() if len(isr) != replicas}
    raise AssertionError(f"ISR not back to {replicas} within {timeout:.0f}s: {short}")


_EPOCH = re.compile(rb"In the new epoch (\d+), the leader is (\d+)")


def active_controller(cluster: KafkaCluster) -> KafkaNode | None:
    """Return the quorum's active controller as the live nodes' logs tell it (the leader of the highest epoch
    any of them saw), or None while no live node knows one.

    Kafka's client Admin has describeMetadataQuorum, but aiokafka has not, and the jar with Kafka's command-line
    tools is not in the pinned Maven project; every QuorumController logs each new epoch's leader at INFO.
    """
    best: tuple[int, int] | None = None
    for node in cluster.members:
        if node.alive() and node.log_path.exists():
            for epoch, leader in _EPOCH.findall(node.log_path.read_bytes()):
                if best is None or int(epoch) > best[0]:
                    best = (int(epoch), int(leader))
    if best is None:
        return None
    return next((n for n in cluster.members if n.node_id == best[1] and n.alive()), None)


@contextlib.contextmanager
def three_node_cluster(data_dir: Path, attempts: int = 3) -> Iterator[KafkaCluster]:
    """Start a 3-node cluster of this test's own under `data_dir`, stopping it afterwards.

    Its ports are picked free from the ephemeral range and can be taken by another process before the JVMs bind
    them (seen on the shared machines): such a start is tried again on new ports and a new data dir.
    """
    for attempt in range(1, attempts + 1):
        cluster = KafkaCluster(nodes=3, data_dir=data_dir / f"kafka-{attempt}")
        try:
            cluster.start(timeout=240)
            break
        except BrokerError as exc:  # start() stops every node it started before raising
            if "before listening" not in str(exc) or attempt == attempts:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()


def restart(node: KafkaNode, timeout: float = 180.0) -> float:
    """Start a stopped node on its own log dir and wait until it listens; return the seconds it took.

    The nodes' ports come from the ephemeral range, so while a node is down a client's outgoing connection can
    take its port for a while (seen here: "Address already in use"); the start is tried again until `timeout`.
    """
    started = time.monotonic()
    while True:
        node.start()
        try:
            node.wait_listening(max(1.0, timeout - (time.monotonic() - started)))
            return time.monotonic() - started
        except BrokerError:
            taken = b"Address already in use" in node.log_path.read_bytes()[-20000:]
            node.kill()
            if not taken or time.monotonic() - started > timeout:
                raise
            time.sleep(2.0)


# --- services -----------------------------------------------------------------------------------------------------


def service_env(cluster: KafkaCluster) -> dict[str, str]:
    """Return this cluster's service settings (production profile), whatever the session's broker is."""
    return {**cluster.service_env(secrets.token_hex(16)), "CONDUCTOR_WORKER_LOG_LEVEL": "info"}


def start_worker(cluster: KafkaCluster, workdir: Path, env: dict[str, str], port: int | None = None) -> WorkerProcess:
    """Start a real worker on the cluster and wait until it is ready (joined, tables recovered)."""
    return WorkerProcess(cluster.url, workdir, port or free_port(), **env).start_and_wait(timeout=240)


def start_gateway(cluster: KafkaCluster, workdir: Path, worker: WorkerProcess, env: dict[str, str]) -> GatewayProcess:
    """Start a real gateway on the cluster, its rate limits raised far above the test's load."""
    gateway = GatewayProcess(
        cluster.url,
        workdir,
        free_port(),
        worker.web_url,
        **env,
        CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE=HIGH_LIMIT,
        CONDUCTOR_GATEWAY_RATE_LIMIT_BATCH_STATUS=HIGH_LIMIT,
        CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_OUTCOME=HIGH_LIMIT,
        CONDUCTOR_GATEWAY_RETRY_AFTER_SECONDS="1",
    )
    return gateway.start_and_wait(timeout=120)


# --- workload -----------------------------------------------------------------------------------------------------


def batch_events(prefix: str, batches: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (registrations, later completion events) for `batches` batches owned by the gateway's dev user."""
    registrations, later = [], []
    for i in range(batches):
        batch = f"{prefix}-{i}"
        essays = [f"{batch}-e{j}" for j in range(3)]
        registrations.append(m.registered(batch, essays, user_id=DEV_USER))
        later.extend(m.spellcheck(batch, e, ok=(i + j) % 5 != 0, at=1 + j) for j, e in enumerate(essays))
        later.append(m.phase_outcome(batch, "nlp", essays[: 1 + i % 3]))
    return registrations, later


def key_of(msg: dict[str, Any]) -> bytes:
    """Return the message's batch id (the partitioning key the platform uses)."""
    data = msg["data"]
    return str(data.get("batch_id") or data.get("entity_id") or data.get("parent_id")).encode()


async def send_events(bootstrap: str, events: list[dict[str, Any]], per_second: float = 0.0) -> int:
    """Produce events in order (idempotent, acks=all), each retried until acknowledged, optionally paced.

    Returns how many sends failed and were retried (a broker outage makes the producer fail, not the test).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=5000
    )
    await producer.start()
    retries = 0
    started = time.monotonic()
    try:
        for i, event in enumerate(events):
            if per_second:
                await asyncio.sleep(max(0.0, started + i / per_second - time.monotonic()))
            while True:
                try:
                    await producer.send_and_wait(event["event_type"], m.as_bytes(event), key=key_of(event))
                    break
                except KafkaError:
                    retries += 1  # a duplicate on retry is harmless: the projection is idempotent
                    await asyncio.sleep(0.5)
    finally:
        await producer.stop()
    return retries


@dataclass(frozen=True)
class Answer:
    """One POST: its command, when it was sent (seconds since the load began), how long it took, what came back."""

    correlation_id: str
    sent: float
    latency: float
    status: int  # 0: no HTTP answer at all (connection error or client timeout)
    retry_after: str | None
    code: str | None


@dataclass
class HttpLoad:
    """Pipeline commands posted through the gateway by concurrent clients; a 503 is retried with the same
    X-Correlation-ID after its Retry-After, as the API asks clients to do."""

    url: str
    batches: list[str]
    total: int
    clients: int = 8
    per_second: float = 0.0  # > 0: open loop at this rate (clients bounds the requests in flight)
    answers: list[Answer] = field(default_factory=list)
    started: float = 0.0
    stopping: bool = False  # set to end an open-loop load before `total`

    def stop(self) -> None:
        """End an open-loop load: no new command is started (retries of started ones go on)."""
        self.stopping = True

    def accepted(self) -> set[str]:
        """Return the correlation ids the gateway answered 202."""
        return {a.correlation_id for a in self.answers if a.status == 202}

    def refused_only(self) -> set[str]:
        """Return the correlation ids that never got a 202."""
        return {a.correlation_id for a in self.answers} - self.accepted()

    def elapsed(self) -> float:
        """Return the seconds since the load began."""
        return time.monotonic() - self.started

    async def _post(self, http: httpx.AsyncClient, batch: str, pipeline: str, cid: str) -> int:
        sent = time.monotonic()
        try:
            response = await http.post(
                f"/v1/batches/{batch}/pipelines",
                json={"requested_pipeline": pipeline},
                headers={"X-Correlation-ID": cid},
            )
        except httpx.HTTPError:
            self.answers.append(Answer(cid, sent - self.started, time.monotonic() - sent, 0, None, None))
            return 0
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        self.answers.append(
            Answer(
                cid,
                sent - self.started,
                time.monotonic() - sent,
                response.status_code,
                response.headers.get("retry-after"),
                body.get("code") if isinstance(body, dict) else None,
            )
        )
        return response.status_code

    async def _command(self, http: httpx.AsyncClient, n: int, give_up: float) -> None:
        batch, pipeline, cid = self.batches[n % len(self.batches)], PIPELINES[n % len(PIPELINES)], str(uuid.uuid4())
        while True:
            status = await self._post(http, batch, pipeline, cid)
            if status not in (0, 503) or time.monotonic() > give_up:
                return
            retry_after = next(a.retry_after for a in reversed(self.answers) if a.correlation_id == cid)
            await asyncio.sleep(float(retry_after or 1))

    async def run(self, give_up_after: float = 600.0) -> None:
        """Post `total` commands; retried 503s give up `give_up_after` seconds after the load began."""
        self.started = time.monotonic()
        give_up = self.started + give_up_after
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=60.0, limits=limits) as http:
            if self.per_second:
                # Open loop at `per_second`, at most `clients` requests in flight: where the machine cannot keep
                # the rate, the schedule slips (the achieved rate is reported) instead of queueing without bound.
                slots = asyncio.Semaphore(self.clients)
                tasks: set[asyncio.Task[None]] = set()

                async def one(n: int) -> None:
                    try:
                        await self._command(http, n, give_up)
                    finally:
                        slots.release()

                for n in range(self.total):
                    if self.stopping:
                        break
                    await asyncio.sleep(max(0.0, self.started + n / self.per_second - time.monotonic()))
                    await slots.acquire()
                    task = asyncio.create_task(one(n))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.gather(*tasks)
            else:
                counter = iter(range(self.total))

                async def client() -> None:
                    for n in counter:
                        await self._command(http, n, give_up)

                await asyncio.gather(*(client() for _ in range(self.clients)))

    async def wait_accepted(self, count: int, timeout: float) -> None:
        """Wait until `count` commands were accepted (the fault is injected mid-stream, not before it)."""
        deadline = time.monotonic() + timeout
        while sum(a.status == 202 for a in self.answers) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.accepted())} of {count} commands accepted in {timeout:.0f}s")
            await asyncio.sleep(0.1)

    def unavailable_windows(self) -> list[tuple[float, float]]:
        """Return each stretch (start, seconds) from a refused request to the next request that got a 202."""
        windows: list[tuple[float, float]] = []
        opened: float | None = None
        for a in sorted(self.answers, key=lambda a: a.sent):
            if a.status != 202 and opened is None:
                opened = a.sent
            elif a.status == 202 and opened is not None and a.sent >= opened:
                windows.append((opened, a.sent + a.latency - opened))
                opened = None
        if opened is not None:
            windows.append((opened, self.elapsed() - opened))
        return windows

    def worst_second_p99(self) -> tuple[float, int]:
        """Return the highest p99 latency of the 202s sent in any one second, and that second."""
        by_second: dict[int, list[float]] = defaultdict(list)
        for a in self.answers:
            if a.status == 202:
                by_second[int(a.sent)].append(a.latency)
        worst = (0.0, -1)
        for second, latencies in by_second.items():
            p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
            worst = max(worst, (p99, second))
        return worst

    def summary(self) -> str:
        """Return the load's figures in one line."""
        statuses = Counter(a.status for a in self.answers)
        windows = self.unavailable_windows()
        longest = max(windows, key=lambda w: w[1], default=(0.0, 0.0))
        return (
            f"{self.total} commands, {len(self.answers)} POSTs in {self.elapsed():.1f}s, statuses {dict(statuses)}, "
            f"{len(self.accepted())} accepted, {len(self.refused_only())} never accepted, "
            f"{len(windows)} unavailability window(s), longest {longest[1]:.2f}s (from t={longest[0]:.1f}s)"
        )


# --- checks -------------------------------------------------------------------------------------------------------


async def read_to_end(
    bootstrap: str, topics: Iterable[str], timeout: float = 120.0, attempts: int = 10
) -> list[ConsumerRecord[bytes, bytes]]:
    """Return every record of `topics` up to the end offsets of now (ListOffsets is exact on Apache Kafka); a read
    that fails with a Kafka error (a node not ready on the loaded machine) is done again from the start."""
    for attempt in range(1, attempts + 1):
        try:
            return await kafka_support.read_to_end(bootstrap, list(topics), timeout=timeout)
        except KafkaError:
            if attempt == attempts:
                raise
            await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


async def wait_answered(bootstrap: str, wanted: set[str], timeout: float) -> set[str]:
    """Wait until every correlation id in `wanted` has an answer on the output topics; return the unanswered."""
    answered: set[str] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= answered and time.monotonic() < deadline:
        # From the beginning each time: a consumer that failed (a node not ready on the loaded machine) is redone.
        consumer = AIOKafkaConsumer(
            *ANSWER_TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        try:
            await consumer.start()
            while not wanted <= answered and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    answered.update(json.loads(r.value or b"{}")["data"]["client_correlation_id"] for r in batch)
        except KafkaError:
            await asyncio.sleep(1.0)
        finally:
            await stop_quietly(consumer)
    return wanted - answered


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer whose fetcher may have failed: aiokafka's stop() then re-raises the CancelledError of its
    fetch task (seen when a node was not ready on the loaded machine). A cancellation of the caller goes on."""
    try:
        await consumer.stop()
    except (KafkaError, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


@dataclass
class AnswerCheck:
    """The whole content of the output topics, checked against what the gateway accepted."""

    accepted: int
    answered: int
    distinct_answers: int
    duplicates: int
    differing: dict[str, int]
    lost: set[str]
    refused_but_answered: int

    def line(self) -> str:
        """Return the figures in one line."""
        return (
            f"accepted {self.accepted}, answered {self.answered}, lost {len(self.lost)}, "
            f"redelivered duplicates {self.duplicates} (byte-identical), differing {len(self.differing)}, "
            f"503'd commands answered anyway {self.refused_but_answered}"
        )


async def check_answers(bootstrap: str, load: HttpLoad, timeout: float = 300.0) -> AnswerCheck:
    """Wait for every accepted command's answer, then read the output topics to their end and check them whole."""
    accepted = load.accepted()
    await wait_answered(bootstrap, accepted, timeout)
    mine = {a.correlation_id for a in load.answers}
    values: dict[str, list[bytes]] = defaultdict(list)
    for record in await read_to_end(bootstrap, ANSWER_TOPICS):
        cid = json.loads(record.value or b"{}")["data"]["client_correlation_id"]
        if cid in mine:
            values[cid].append(record.value or b"")
    return AnswerCheck(
        accepted=len(accepted),
        answered=len(accepted & values.keys()),
        distinct_answers=len(values),
        duplicates=sum(len(v) - 1 for v in values.values()),
        differing={cid: len(set(v)) for cid, v in values.items() if len(set(v)) != 1},
        lost=accepted - values.keys(),
        refused_but_answered=len(load.refused_only() & values.keys()),
    )


def assert_http_contract(load: HttpLoad, allowed: frozenset[int] = frozenset({202, 503})) -> None:
    """Every POST was answered, with 202 or a 503 problem carrying Retry-After; never a 500."""
    statuses = Counter(a.status for a in load.answers)
    assert set(statuses) <= allowed, f"unexpected statuses {dict(statuses)}"
    for a in load.answers:
        if a.status == 503:
            assert a.retry_after is not None and int(a.retry_after) >= 1, a
