"""Run Apache Kafka (KRaft) on loopback from the pinned Maven project in deploy/kafka: one node or a 3-node quorum.

The broker's jars come from Maven Central, resolved once (`mvn dependency:copy-dependencies`) into a cache outside
the repository; each node then runs as `java -cp <cache>/lib/* kafka.Kafka <its server.properties>`, after
`kafka.tools.StorageTool format` on first use. Every node is controller and broker, with its own log dir under the
data dir, so topics, offsets and table changelogs survive a restart on the same data dir.
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

from conductor.broker import BrokerError, die_with_parent, wait_for_port
from conductor.kafka_admin import live_brokers

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
POM = DEPLOY / "pom.xml"
SHARED_PROPERTIES = DEPLOY / "broker.properties"
LOG4J = DEPLOY / "log4j.properties"
# A free range above the client ports: node i's controller listens on controller_port + i - 1.
CONTROLLER_PORT_OFFSET = 100


class KafkaUnavailable(BrokerError):
    """A tool Apache Kafka needs here (java, mvn) is missing, or its jars could not be resolved."""


def kafka_version() -> str:
    """Return the Kafka release the Maven project pins."""
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)]


def cache_root() -> Path:
    """Return where resolved jars are kept (CONDUCTOR_KAFKA_CACHE, else ~/.cache/batch-conductor/kafka)."""
    configured = os.environ.get("CONDUCTOR_KAFKA_CACHE")  # read here: a path for tools, not a service setting
    return Path(configured) if configured else Path.home() / ".cache" / "batch-conductor" / "kafka"


def shared_properties() -> dict[str, str]:
    """Return the broker settings shared with docker-compose.yml (deploy/kafka/broker.properties)."""
    props: dict[str, str] = {}
    for line in SHARED_PROPERTIES.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def replication_properties(nodes: int) -> dict[str, str]:
    """Return the replication settings for a cluster of `nodes`: factor min(3, n), min.insync.replicas min(2, n)."""
    factor, min_isr = str(min(3, nodes)), str(min(2, nodes))
    return {
        "default.replication.factor": factor,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
    }


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaUnavailable(
            f"Apache Kafka needs `{tool}` on PATH; install it (Debian: apt-get install -y {package})"
        )
    return path


def resolve_jars(progress: bool = True) -> Path:
    """Return the folder of the broker's jars, resolving deploy/kafka/pom.xml into the cache on first use."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    lib = cache_root() / f"{kafka_version()}-{digest}" / "lib"
    if (lib / ".complete").exists():
        return lib
    mvn = _require("mvn", "maven")
    staging = lib.parent / f"lib.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if progress:
        print(f"resolving Apache Kafka {kafka_version()} from Maven Central into {lib} (once)...", flush=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"mvn could not resolve {POM}:\n{(result.stdout + result.stderr)[-2000:]}")
    (staging / ".complete").touch()
    with contextlib.suppress(OSError):  # another process may have finished first: its copy is as good
        staging.rename(lib)
    shutil.rmtree(staging, ignore_errors=True)
    return lib


def service_env(nodes: int, internal_token: str) -> dict[str, str]:
    """Return the settings workers and gateways run with on this cluster: the production profile.

    Idempotent producers, Faust's own fetch wait, the recovery consistency check and no embedded-broker
    workaround, as in production; topics replicated like the cluster's defaults. Only the group timing is
    shortened, because a local cluster's workers start and stop often (a join then takes seconds, not a minute).
    """
    return {
        "CONDUCTOR_WORKER_PROFILE": "production",
        "CONDUCTOR_INTERNAL_TOKEN": internal_token,
        "CONDUCTOR_TOPIC_REPLICATION_FACTOR": str(min(3, nodes)),
        "CONDUCTOR_GATEWAY_ENABLE_IDEMPOTENCE": "true",
        "CONDUCTOR_WORKER_BROKER_SESSION_TIMEOUT": "10",
        "CONDUCTOR_WORKER_BROKER_HEARTBEAT_INTERVAL": "1",
        "CONDUCTOR_WORKER_BROKER_REBALANCE_TIMEOUT": "3",
    }


class KafkaNode:
    """One KRaft node (controller + broker) of a local cluster."""

    def __init__(self, cluster: "KafkaCluster", node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = cluster.port + node_id - 1
        self.controller_port = cluster.controller_port + node_id - 1
        self.dir = cluster.data_dir / f"node-{node_id}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Return this node's `host:port`."""
        return f"{self.cluster.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the node's log file."""
        return self.dir / "server.log"

    def properties(self) -> dict[str, str]:
        """Return this node's server.properties."""
        host = self.cluster.host
        return {
            **shared_properties(),
            **replication_properties(self.cluster.nodes),
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.cluster.voters,
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.port}",
            "log.dirs": str(self.dir / "data"),
            # Few threads: the machines this runs on have 2 cores.
            "num.network.threads": "2",
            "num.io.threads": "2",
        }

    def _write_properties(self) -> Path:
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        return path

    def _java(self, *args: str) -> list[str]:
        return [
            self.cluster.java,
            f"-Xms{self.cluster.heap_mb // 4}m",
            f"-Xmx{self.cluster.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{LOG4J}",
            "-cp",
            f"{self.cluster.lib}/*",
            *args,
        ]

    def format_storage(self) -> None:
        """Format the node's log dir for the cluster's id, unless it already holds a formatted log."""
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self._write_properties()
        if (self.dir / "data" / "meta.properties").exists():
            return
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster.cluster_id}", "-c", str(props)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting node {self.node_id} failed:\n{(result.stdout + result.stderr)[-2000:]}")

    def start(self) -> None:
        """Launch the node (formatting it first if new); does not wait."""
        self.format_storage()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.dir / "server.properties")),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches only the parent, which stops the nodes itself; SIGKILL if the parent dies.
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(signal.SIGKILL),
        )

    def wait_listening(self, timeout: float) -> None:
        """Wait until the node accepts client connections."""
        wait_for_port(self.cluster.host, self.port, timeout, self.process)

    def alive(self) -> bool:
        """Return whether the node's JVM is running."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the node's JVM (SIGSTOP / SIGCONT for an outage that keeps its state)."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        """Crash the node: SIGKILL, no controlled shutdown (its log dir stays for a restart)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 20.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class KafkaCluster:
    """A local Apache Kafka cluster of 1 or 3 KRaft nodes; a context manager (the broker interface of the tests)."""

    kind = "kafka"

    def __init__(
        self,
        nodes: int = 1,
        port: int | None = None,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        controller_port: int | None = None,
        heap_mb: int | None = None,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes")
        self.nodes = nodes
        self.host = host
        self.port = port or free_port_run(host, nodes)
        self.controller_port = controller_port or self.port + CONTROLLER_PORT_OFFSET
        self._own_dir = data_dir is None
        self.data_dir = (data_dir or Path(_tempdir())).resolve()
        # 24 GiB and 2 cores: a gigabyte each is plenty for test and demo loads.
        self.heap_mb = heap_mb or (1024 if nodes == 1 else 768)
        self.java = ""
        self.lib = Path()
        self.cluster_id = ""
        self.members = [KafkaNode(self, i) for i in range(1, nodes + 1)]

    @property
    def voters(self) -> str:
        """Return `controller.quorum.voters` (id@host:port for every node)."""
        return ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.members)

    @property
    def bootstrap(self) -> str:
        """Return every node's `host:port`, comma-separated, for Kafka clients."""
        return ",".join(n.bootstrap for n in self.members)

    @property
    def url(self) -> str:
        """Return the broker list in the service's form (`kafka://host:port,...`)."""
        return ",".join(f"kafka://{n.bootstrap}" for n in self.members)

    def service_env(self, internal_token: str) -> dict[str, str]:
        """Return the settings workers and gateways run with on this cluster (see `service_env`)."""
        return service_env(self.nodes, internal_token)

    def _load_identity(self) -> None:
        """Read or create the cluster id; refuse a data dir made for another node count."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        meta = self.data_dir / "cluster.json"
        if meta.exists():
            known = json.loads(meta.read_text())
            if known["nodes"] != self.nodes:
                raise BrokerError(
                    f"{self.data_dir} holds a {known['nodes']}-node cluster; start it with --nodes {known['nodes']} "
                    "or remove the directory to start afresh"
                )
            self.cluster_id = str(known["cluster_id"])
        else:
            # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding (22 characters); like
            # Kafka's own Uuid.randomUuid(), never one that starts with "-" (a command line would take it for a flag).
            self.cluster_id = "-"
            while self.cluster_id.startswith("-"):
                self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            meta.write_text(json.dumps({"cluster_id": self.cluster_id, "nodes": self.nodes}))

    def start(self, timeout: float = 90.0) -> "KafkaCluster":
        """Resolve the jars, start every node and wait until all accept connections and have joined the cluster."""
        self.java = _require("java", "openjdk-17-jre-headless")
        self.lib = resolve_jars()
        self._load_identity()
        try:
            for node in self.members:
                node.start()
            deadline = time.monotonic() + timeout
            for node in self.members:
                node.wait_listening(max(deadline - time.monotonic(), 1.0))
            self.wait_brokers(self.nodes, max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise
        return self

    def wait_brokers(self, count: int, timeout: float) -> None:
        """Wait until the cluster's metadata lists `count` live brokers."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for node in self.members:
                if node.process is not None and node.process.poll() is not None:
                    raise BrokerError(f"kafka node {node.node_id} exited; see {node.log_path}")
            # In a thread of its own: the caller may be inside an event loop (an async test).
            with ThreadPoolExecutor(1) as pool:
                seen = pool.submit(asyncio.run, live_brokers(self.bootstrap)).result()
            if seen >= count:
                return
            time.sleep(0.2)
        raise BrokerError(f"{seen} of {count} Kafka brokers registered after {timeout:.0f}s; see {self.data_dir}")

    def freeze(self) -> None:
        """Simulate an outage of the whole cluster: SIGSTOP every node."""
        for node in self.members:
            node.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """End a simulated outage: SIGCONT every node."""
        for node in self.members:
            node.signal(signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node (controlled shutdown in parallel, SIGKILL past `timeout`); leaves no JVM behind."""
        for node in self.members:
            if node.alive():
                node.signal(signal.SIGCONT)
                node.signal(signal.SIGTERM)
        # One deadline for all: nodes waited for one after another with `timeout` each took 3 x 20 s when every node
        # lingered in its controlled shutdown (the quorum leaves with them), past the CLI test's 60 s.
        deadline = time.monotonic() + timeout
        for node in self.members:
            node.stop(max(0.1, deadline - time.monotonic()))
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "KafkaCluster":
        return self.start() if not any(n.alive() for n in self.members) else self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def free_port_run(host: str = "127.0.0.1", count: int = 1) -> int:
    """Return a port P such that P .. P+count-1 and their controller ports (+100) are free now.

    Drawn below Linux's ephemeral range (32768-60999): a port handed out by the kernel for free_port() or an
    outgoing connection could otherwise be taken between this choice and a node's start (seen on a busy machine).
    """
    rng = random.SystemRandom()
    for _ in range(200):
        first = rng.randrange(20000, 32000 - CONTROLLER_PORT_OFFSET - count)
        wanted = [first + i for i in range(count)] + [first + CONTROLLER_PORT_OFFSET + i for i in range(count)]
        if all(_port_free(host, port) for port in wanted):
            return first
    raise BrokerError(f"no run of {count} free ports (and their controller ports) found")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _tempdir() -> str:
    return tempfile.mkdtemp(prefix="conductor-kafka-")
