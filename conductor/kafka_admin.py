"""Kafka plumbing outside the agents: create the service's topics (one partition count), publish messages in order."""

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout: float | None = 60.0,
    config: dict[str, str] | None = None,
) -> list[str]:
    """Create the missing `topics` (with topic `config`), retrying until the broker answers or `timeout` (None:
    forever); return them."""
    wanted = list(dict.fromkeys(topics))
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    pause = 0.5
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                await admin.create_topics(
                    [
                        NewTopic(
                            t, num_partitions=partitions, replication_factor=replication_factor, topic_configs=config
                        )
                        for t in missing
                    ]
                )
                log.info("created %d topic(s) with %d partitions: %s", len(missing), partitions, ", ".join(missing))
            return missing
        except TopicAlreadyExistsError:
            return []
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if deadline is not None and loop.time() > deadline:
                raise
            log.warning("broker %s not reachable (%s); retrying in %.1fs", bootstrap, exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        finally:
            await admin.close()


async def topics_not_ready(client: AIOKafkaClient, topics: list[str]) -> dict[str, list[str]]:
    """Return, per broker, the `topics` its metadata lacks or lists with a partition that has no leader."""
    await client.force_metadata_update()
    lagging: dict[str, list[str]] = {}
    for broker in client.cluster.brokers():
        name = f"node {broker.nodeId} ({broker.host}:{broker.port})"
        try:
            response = await client.send(broker.nodeId, MetadataRequest(topics, False))
        except (KafkaError, OSError) as exc:
            lagging[name] = [f"unreachable: {type(exc).__name__}"]
            continue
        metadata = ClusterMetadata()
        metadata.update_metadata(response)
        not_ready = [
            topic
            for topic in topics
            if not metadata.partitions_for_topic(topic)
            or metadata.available_partitions_for_topic(topic) != metadata.partitions_for_topic(topic)
        ]
        if not_ready:
            lagging[name] = not_ready
    return lagging


async def wait_for_topics(bootstrap: str, topics: Iterable[str], timeout: float = 60.0) -> bool:
    """Wait until every broker's metadata lists every topic with a leader for each partition; False on timeout.

    A topic just created reaches the brokers' metadata caches one by one. A Faust worker whose consumer group began
    while one of its changelog topics was missing from the metadata it read kept "0 partitions" for it (aiokafka's
    subscription snapshot), and every table write then raised PartitionsMismatch (seen on a fresh 3-node cluster).
    """
    wanted = list(dict.fromkeys(topics))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    lagging: dict[str, list[str]] = {}
    try:
        await client.bootstrap()
        while loop.time() < deadline:
            lagging = await topics_not_ready(client, wanted)
            if not lagging:
                return True
            await asyncio.sleep(0.2)
    except (KafkaError, OSError) as exc:
        lagging = {bootstrap: [f"unreachable: {type(exc).__name__}"]}
    finally:
        await client.close()
    log.warning("after %.0fs some brokers still lack topics (starting anyway): %s", timeout, lagging)
    return False


async def produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Send (topic, key, value) messages in order, each acknowledged (acks=all) before the next; return the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent = 0
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
            sent += 1
    finally:
        await producer.stop()
    return sent


async def live_brokers(bootstrap: str) -> int:
    """Return how many brokers the cluster's metadata lists (0 when none answers)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers", []))
    except (KafkaConnectionError, KafkaError, OSError):
        return 0
    finally:
        await admin.close()
