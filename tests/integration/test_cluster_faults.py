"""Issue 11: faults of a replicated 3-node Apache Kafka cluster (replication factor 3, min.insync.replicas 2,
acks=all, idempotent producers), with nothing lost.

Each scenario starts its own cluster (whatever the session's broker), a real worker (or two) and a real gateway
in the production profile, registers several hundred batches, then streams their completion events while
concurrent HTTP clients post at least 2,000 pipeline commands through the gateway, and injects its fault
mid-stream. Pass, every time: every 202 is answered on the output topics, each command has one distinct answer
(redelivered ones byte-identical; the topics are read whole, to their end offsets), the final `batch_state` equals
the crash-free projection, and the gateway answers 202 or 503 with Retry-After (never a 500). Each test prints
its figures and appends them to `figures.log` in its tmp dir. Run: `pytest -s -m cluster_faults tests/integration/
test_cluster_faults.py` (they take minutes each: marker `cluster_faults`, which CI runs in the Kafka pass).
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from conductor.kafka_cluster import KafkaCluster, KafkaNode
from tests.integration.test_worker_crash import STEPS, assert_views_become, expected_views
from tests.support import cluster_faults as cf
from tests.support.brokers import kind
from tests.support.gateway_process import GatewayProcess
from tests.support.processes import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.cluster_faults,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        kind() != "kafka", reason="faults of a 3-node Apache Kafka cluster run in the Kafka pass (--broker kafka)"
    ),
]

BATCHES = 300
COMMANDS = 2000
CLIENTS = 8
EVENTS_PER_SECOND = 25.0  # the 1,200 later completion events spread over about the time the commands take
ALL_TOPICS = [*cf.LEADER_TOPICS, *cf.ANSWER_TOPICS]
assert STEPS  # the oracle's step list (test_worker_crash) is the one the views report

Fault = Callable[[cf.HttpLoad], Awaitable[None]]


class Scenario:
    """One scenario's cluster, services and workload; `run` streams the workload with a fault injected."""

    def __init__(self, tmp_path: Path, cluster: KafkaCluster, name: str) -> None:
        self.tmp_path = tmp_path
        self.cluster = cluster
        self.name = name
        self.log = tmp_path / "figures.log"
        self.env = cf.service_env(cluster)
        self.workers: list[WorkerProcess] = []
        self.gateway: GatewayProcess | None = None
        self.events: list[dict[str, object]] = []

    def start_services(self, workers: int = 1) -> None:
        """Start the workers and the gateway (pointed at the first worker)."""
        for _ in range(workers):
            self.workers.append(cf.start_worker(self.cluster, self.tmp_path, self.env))
        self.gateway = cf.start_gateway(self.cluster, self.tmp_path, self.workers[0], self.env)

    def stop_services(self) -> None:
        """Stop the gateway and every worker."""
        if self.gateway is not None:
            self.gateway.stop()
        for worker in self.workers:
            worker.stop()

    def say(self, text: str) -> None:
        """Print and log one figure line."""
        cf.report(self.log, f"[{self.name}] {text}")

    async def register(self, prefix: str) -> tuple[list[str], list[dict[str, object]]]:
        """Register BATCHES batches and wait until the worker knows each; return them and their later events."""
        registrations, later = cf.batch_events(prefix, BATCHES)
        self.events.extend(registrations + later)
        await cf.send_events(self.cluster.bootstrap, registrations)
        batches = [f"{prefix}-{i}" for i in range(BATCHES)]
        unknown = set(batches)
        worker = self.workers[0]

        def all_known() -> bool:
            with httpx.Client(base_url=worker.web_url, headers=worker.internal_headers, timeout=10) as client:
                for batch in sorted(unknown):
                    if client.get(f"/batches/{batch}").status_code == 200:
                        unknown.discard(batch)
            return not unknown

        await asyncio.to_thread(wait_until, all_known, 180, "every batch registered", 1.0)
        return batches, later

    async def run(
        self,
        prefix: str,
        fault: Fault | None,
        commands: int = COMMANDS,
        per_second: float = 0.0,
        clients: int = CLIENTS,
    ) -> cf.HttpLoad:
        """Stream the later completion events and the commands; inject `fault` mid-stream; return the load."""
        batches, later = await self.register(prefix)
        assert self.gateway is not None
        load = cf.HttpLoad(self.gateway.url, batches, commands, clients=clients, per_second=per_second)
        events = asyncio.create_task(cf.send_events(self.cluster.bootstrap, later, EVENTS_PER_SECOND))
        posting = asyncio.create_task(load.run())
        try:
            if fault is not None:
                await fault(load)
            await posting
            retried = await events
        finally:
            for task in (events, posting):
                task.cancel()
        self.say(f"load: {load.summary()}; {len(later)} completion events streamed alongside, {retried} retried")
        return load

    async def check(self, load: cf.HttpLoad, allowed: frozenset[int] = frozenset({202, 503})) -> cf.AnswerCheck:
        """Assert the pass criteria shared by every scenario; return the answer figures."""
        result = await cf.check_answers(self.cluster.bootstrap, load, timeout=420)
        self.say(f"answers: {result.line()}")
        worker = next(w for w in self.workers if w.process is not None)
        assert not result.lost, (
            f"{len(result.lost)} accepted command(s) never answered, e.g. {sorted(result.lost)[:3]}\n"
            f"--- worker log ---\n{worker.log_tail(60)}"
        )
        assert not result.differing, f"{len(result.differing)} command(s) with different answers: {result.differing}"
        cf.assert_http_contract(load, allowed)
        expected = expected_views(self.events)  # type: ignore[arg-type]
        await asyncio.to_thread(assert_views_become, worker, sorted(expected), expected, 240)
        return result


async def kill_node(node: KafkaNode) -> None:
    """kill -9 a Kafka node without blocking the event loop the load runs on."""
    await asyncio.to_thread(node.kill)


async def restart_node(node: KafkaNode) -> float:
    """Restart a node on its own log dir (off the event loop); return the seconds until it listens."""
    return await asyncio.to_thread(cf.restart, node, 240)


def prefix_for(name: str) -> str:
    """Return a batch-id prefix unique to this run."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_leader_loss_mid_stream_then_the_broker_restarts_with_its_data(tmp_path: Path) -> None:
    """Scenarios 1 and 2: kill -9 the broker leading most command and changelog partitions mid-stream; then
    restart it on its log dir, time its return to a full ISR, and serve a second workload on all three nodes."""
    with cf.three_node_cluster(tmp_path) as cluster:
        sc = Scenario(tmp_path, cluster, "leader loss")
        sc.start_services()
        try:
            killed: list[KafkaNode] = []

            async def lose_the_leader(load: cf.HttpLoad) -> None:
                await load.wait_accepted(COMMANDS // 3, 600)
                leader, counts = await cf.busiest_leader(cluster.bootstrap, cf.LEADER_TOPICS)
                node = next(n for n in cluster.members if n.node_id == leader)
                await kill_node(node)
                killed.append(node)
                sc.say(
                    f"kill -9 node {leader} (leader of {dict(counts)} partitions) at t={load.elapsed():.1f}s, "
                    f"after {len(load.accepted())} accepted"
                )

            load = await sc.run(prefix_for("leader"), lose_the_leader)
            first = await sc.check(load)
            [node] = killed
            states = await cf.partition_states(cluster.bootstrap, cf.LEADER_TOPICS)
            assert all(leader != node.node_id for leader, _ in states.values()), "a partition still led by the dead"

            # Scenario 2: the killed broker comes back with its data and catches up.
            listening = await restart_node(node)
            to_full_isr = await cf.wait_full_isr(cluster.bootstrap, ALL_TOPICS, 3, 300)
            sc.say(
                f"node {node.node_id} restarted on its log dir: listening after {listening:.1f}s, "
                f"full ISR (3/3 on {len(ALL_TOPICS)} topics) {to_full_isr:.1f}s later"
            )
            sc.name = "restart"
            second_load = await sc.run(prefix_for("rejoined"), None, commands=COMMANDS // 2)
            second = await sc.check(second_load, allowed=frozenset({202}))
            states = await cf.partition_states(cluster.bootstrap, ALL_TOPICS)
            assert all(len(isr) == 3 for _, isr in states.values())
            assert {leader for leader, _ in states.values()} <= {1, 2, 3}
        finally:
            sc.stop_services()
    assert first.accepted >= COMMANDS * 0.9 and second.accepted == COMMANDS // 2


async def test_worker_kill_9_and_two_worker_takeover_on_the_cluster(tmp_path: Path) -> None:
    """Scenario 5: two workers share the partitions; one is killed with kill -9 mid-stream, the survivor takes
    its partitions over, then the killed one restarts on its own store and rejoins."""
    with cf.three_node_cluster(tmp_path) as cluster:
        sc = Scenario(tmp_path, cluster, "worker kill")
        sc.start_services(workers=2)
        try:

            async def kill_and_restart_a_worker(load: cf.HttpLoad) -> None:
                await load.wait_accepted(COMMANDS // 3, 600)
                victim = sc.workers[1]
                await asyncio.to_thread(victim.kill)
                sc.say(f"kill -9 the second worker at t={load.elapsed():.1f}s, after {len(load.accepted())} accepted")
                await load.wait_accepted(2 * COMMANDS // 3, 600)
                started = time.monotonic()
                restarted = WorkerProcess(cluster.url, tmp_path, victim.web_port, **sc.env)
                sc.workers[1] = await asyncio.to_thread(restarted.start_and_wait, 240)
                sc.say(
                    f"second worker restarted on its store at t={load.elapsed():.1f}s, "
                    f"ready after {time.monotonic() - started:.1f}s"
                )

            load = await sc.run(prefix_for("wkill"), kill_and_restart_a_worker)
            # The gateway reads the survivor; while partitions move it may say 503 (state unavailable), never 500.
            await sc.check(load)
        finally:
            sc.stop_services()


async def test_two_brokers_lost_then_one_returns(tmp_path: Path) -> None:
    """Scenario 3: with one broker left, no write reaches min.insync.replicas 2: the gateway answers 503 with
    Retry-After and /readyz reports the broker failing, the worker stalls without exiting; once a second broker
    returns everything resumes by itself, with nothing lost."""
    outage_seconds = 30.0
    with cf.three_node_cluster(tmp_path) as cluster:
        sc = Scenario(tmp_path, cluster, "two brokers lost")
        sc.start_services()
        worker, gateway = sc.workers[0], sc.gateway
        assert worker.process is not None and gateway is not None
        worker_pid = worker.process.pid
        seen: dict[str, object] = {}
        try:

            async def lose_two_brokers(load: cf.HttpLoad) -> None:
                await load.wait_accepted(COMMANDS // 3, 600)
                lost = cluster.members[1:]
                await asyncio.gather(*(kill_node(n) for n in lost))
                killed_at = load.elapsed()
                sc.say(f"kill -9 nodes 2 and 3 at t={killed_at:.1f}s, after {len(load.accepted())} accepted")
                readiness: list[dict[str, object]] = []

                def broker_reported_down() -> bool:
                    response = httpx.get(f"{gateway.url}/readyz", timeout=5, trust_env=False)
                    readiness.append({"status": response.status_code, **response.json()})
                    return response.status_code == 503 and response.json()["checks"]["broker"] == "failing"

                await asyncio.to_thread(wait_until, broker_reported_down, 60, "/readyz reports the broker down", 0.5)
                seen["readyz"] = {"status": readiness[-1]["status"], "checks": readiness[-1]["checks"]}
                # Hold the outage; the worker must stay up (one process, no restart loop) all along.
                deadline = time.monotonic() + outage_seconds
                while time.monotonic() < deadline:
                    assert worker.process is not None and worker.process.poll() is None, worker.log_tail(60)
                    await asyncio.sleep(1.0)
                returned_at = load.elapsed()
                accepted_in_outage = [
                    a
                    for a in load.answers
                    if a.status == 202 and killed_at + 5 < a.sent and a.sent + a.latency < returned_at
                ]
                seen["accepted_in_outage"] = len(accepted_in_outage)
                listening = await restart_node(cluster.members[1])
                sc.say(f"node 2 restarted at t={returned_at:.1f}s, listening after {listening:.1f}s")
                seen["returned_at"] = returned_at

            load = await sc.run(prefix_for("two"), lose_two_brokers)
            result = await sc.check(load)
            assert worker.process is not None and worker.process.pid == worker_pid and worker.process.poll() is None
            returned_at = float(seen["returned_at"])  # type: ignore[arg-type]
            first_after = min(
                (a.sent + a.latency for a in load.answers if a.status == 202 and a.sent >= returned_at), default=None
            )
            starts = worker.log_path.read_text(errors="replace").count("[^Worker]: Starting...")
            sc.say(
                f"readyz during the outage: {seen['readyz']}; 202s sent and answered inside the outage: "
                f"{seen['accepted_in_outage']}; first 202 {(first_after or returned_at) - returned_at:.1f}s "
                f"after node 2 was started; worker pid unchanged, started {starts}x"
            )
            assert starts == 1, "the worker restarted itself"
            assert seen["accepted_in_outage"] == 0, "a command was acknowledged with one broker of three"
            assert first_after is not None
            assert result.accepted == COMMANDS
        finally:
            sc.stop_services()


async def test_controller_lost_and_restored_while_workers_rebalance(tmp_path: Path) -> None:
    """Scenario 4: kill -9 the quorum's active controller while a second worker joins (a rebalance), then
    restore it; no answer lost or different."""
    with cf.three_node_cluster(tmp_path) as cluster:
        sc = Scenario(tmp_path, cluster, "controller lost")
        sc.start_services()
        try:

            async def lose_the_controller_during_a_rebalance(load: cf.HttpLoad) -> None:
                await load.wait_accepted(COMMANDS // 3, 600)
                controller = cf.active_controller(cluster)
                assert controller is not None, "no active controller"
                crashes: list[str] = []

                def join() -> WorkerProcess:
                    # A worker that is starting when a broker dies can exit (aiokafka's NodeNotReadyError out of
                    # Faust's start-up); restarted once, as an orchestrator would, and reported.
                    try:
                        return cf.start_worker(cluster, tmp_path, sc.env)
                    except AssertionError as exc:
                        if "exited with" not in str(exc):
                            raise
                        crashes.append(str(exc).splitlines()[-1][:200])
                        return cf.start_worker(cluster, tmp_path, sc.env)

                joining = asyncio.create_task(asyncio.to_thread(join))
                await kill_node(controller)
                lost_at = time.monotonic()
                sc.say(
                    f"kill -9 node {controller.node_id} (active controller) at t={load.elapsed():.1f}s "
                    "while a second worker joins"
                )
                await asyncio.to_thread(
                    wait_until, lambda: cf.active_controller(cluster) not in (None, controller), 120, "a new controller"
                )
                new = cf.active_controller(cluster)
                assert new is not None
                sc.say(f"node {new.node_id} active controller {time.monotonic() - lost_at:.1f}s after the loss")
                sc.workers.append(await joining)
                sc.say(f"second worker ready at t={load.elapsed():.1f}s; start-up crashes: {crashes or 'none'}")
                listening = await restart_node(controller)
                isr = await cf.wait_full_isr(cluster.bootstrap, ALL_TOPICS, 3, 300)
                sc.say(
                    f"node {controller.node_id} restored: listening after {listening:.1f}s, full ISR {isr:.1f}s later"
                )

            load = await sc.run(prefix_for("ctrl"), lose_the_controller_during_a_rebalance)
            # While partitions move between the workers the gateway may answer 503 (state unavailable).
            await sc.check(load)
        finally:
            sc.stop_services()


async def test_rolling_restart_under_a_steady_100_requests_per_second(tmp_path: Path) -> None:
    """Scenario 6: restart the three brokers one at a time (controlled stop, start on the same log dir, wait for
    a full ISR) under 100 POST/s; report 0 lost and the highest p99 latency of any one second."""
    with cf.three_node_cluster(tmp_path) as cluster:
        sc = Scenario(tmp_path, cluster, "rolling restart")
        sc.start_services()
        try:

            async def roll(load: cf.HttpLoad) -> None:
                await load.wait_accepted(500, 600)
                for node in cluster.members:
                    began = load.elapsed()
                    await asyncio.to_thread(node.stop)
                    listening = await restart_node(node)
                    isr = await cf.wait_full_isr(cluster.bootstrap, ALL_TOPICS, 3, 300)
                    sc.say(
                        f"node {node.node_id} restarted at t={began:.1f}s: listening after {listening:.1f}s, "
                        f"full ISR {isr:.1f}s later"
                    )
                await asyncio.sleep(5)  # a few seconds of steady state after the last node
                load.stop()

            load = await sc.run(prefix_for("roll"), roll, commands=100_000, per_second=100.0, clients=32)
            result = await sc.check(load)
            p99, second = load.worst_second_p99()
            sent = [a.sent for a in load.answers]
            rate = len(sent) / max(max(sent) - min(sent), 1.0)  # while posting, not while draining
            sc.say(
                f"lost {len(result.lost)}; highest per-second p99 {p99 * 1000:.0f} ms (second {second}); "
                f"achieved {rate:.0f} POST/s"
            )
            assert len(load.accepted()) >= COMMANDS
        finally:
            sc.stop_services()
