"""Kafka plumbing outside the agents: create the service's topics (one partition count), publish messages in order."""

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout: float | None = 60.0,
) -> list[str]:
    """Create the missing `topics`, retrying until the broker answers or `timeout` (None: forever); return them."""
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
                    [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
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
