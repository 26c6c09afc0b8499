"""`conductor kafka`: real Apache Kafka (KRaft) from Maven Central, kept across restarts, no JVM left behind."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from conductor.kafka_admin import ensure_topics
from conductor.kafka_cluster import KafkaCluster, free_port_run, kafka_version
from tests.support.brokers import kind
from tests.support.processes import REPO, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(kind() != "kafka", reason="Apache Kafka's own tests run in the Kafka pass (--broker kafka)"),
]


def jvm_pids(data_dir: Path) -> set[int]:
    """Return the pids of Kafka JVMs whose command line names `data_dir` (this test's own cluster only)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "kafka.Kafka" in cmdline and str(data_dir) in cmdline:
                found.add(int(entry.name))
    return found


async def topic_replication(bootstrap: str, topic: str, partitions: int) -> tuple[set[int], set[int]]:
    """Return the replica counts and ISR sizes of the topic's partitions, once metadata lists them all."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            [described] = await admin.describe_topics([topic])
            if len(described["partitions"]) == partitions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return {len(p["replicas"]) for p in described["partitions"]}, {len(p["isr"]) for p in described["partitions"]}


async def round_trip(bootstrap: str, topic: str, value: bytes) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen: list[bytes] = []
        deadline = time.monotonic() + 20
        while value not in seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(r.value or b"" for r in records)
        return seen
    finally:
        await consumer.stop()


def test_cli_runs_a_three_node_quorum_until_ctrl_c_and_a_restart_keeps_its_topics(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    port = free_port_run(count=3)
    command = [sys.executable, "-m", "conductor.cli", "kafka", "--nodes", "3", "--port", str(port),
               "--data-dir", str(data_dir)]  # fmt: skip

    def run_until_ready() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("bootstrap:"):
                return proc, lines
        raise AssertionError(f"conductor kafka exited with {proc.wait()}:\n{''.join(lines)}")

    proc, lines = run_until_ready()
    bootstrap = f"127.0.0.1:{port},127.0.0.1:{port + 1},127.0.0.1:{port + 2}"
    try:
        assert f"Apache Kafka {kafka_version()}" in lines[0]
        assert lines[-1].strip() == f"bootstrap: {bootstrap}"
        assert f"controller 127.0.0.1:{port + 100}" in "".join(lines)
        assert len(jvm_pids(data_dir)) == 3
        asyncio.run(ensure_topics(bootstrap, ["test.kept"], partitions=3, replication_factor=3))
        assert asyncio.run(topic_replication(bootstrap, "test.kept", 3)) == ({3}, {3})
        assert b"before restart" in asyncio.run(round_trip(bootstrap, "test.kept", b"before restart"))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0
    wait_until(lambda: not jvm_pids(data_dir), 10, "no Kafka JVM left after Ctrl-C")

    proc, _ = run_until_ready()
    try:
        seen = asyncio.run(round_trip(bootstrap, "test.kept", b"after restart"))
        assert seen[:2] == [b"before restart", b"after restart"]  # the topic and its record were kept
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    wait_until(lambda: not jvm_pids(data_dir), 10, "no Kafka JVM left after SIGTERM")


def test_a_killed_parent_leaves_no_jvm_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conductor.cli", "kafka", "--port", str(free_port_run()), "--data-dir", str(data_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("bootstrap:"):
            break
    assert len(jvm_pids(data_dir)) == 1
    proc.kill()  # an interrupted test run: no chance to stop the nodes
    proc.wait(10)
    wait_until(lambda: not jvm_pids(data_dir), 10, "the JVM died with its parent")


def test_a_data_dir_keeps_its_node_count(tmp_path: Path) -> None:
    with KafkaCluster(nodes=1, data_dir=tmp_path / "kafka"):
        pass
    result = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "kafka", "--nodes", "3", "--data-dir", str(tmp_path / "kafka"),
         "--port", str(free_port_run(count=3))],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "holds a 1-node cluster; start it with --nodes 1 or remove the directory" in result.stderr


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ((), "needs `java` on PATH; install it (Debian: apt-get install -y openjdk-17-jre-headless)"),
        (("java",), "needs `mvn` on PATH; install it (Debian: apt-get install -y maven)"),
    ],
)
def test_a_missing_java_or_mvn_is_named_with_exit_2(tmp_path: Path, tools: tuple[str, ...], message: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}", "CONDUCTOR_KAFKA_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "kafka", "--data-dir", str(tmp_path / "kafka")],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
