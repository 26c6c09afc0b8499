"""Create the topics the service uses, all with one partition count, before anything produces to them."""

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 60.0,
) -> list[str]:
    """Create the missing `topics`; retry until the broker answers or `timeout` passes. Return those created."""
    wanted = list(dict.fromkeys(topics))
    deadline = asyncio.get_running_loop().time() + timeout
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
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("broker %s not ready (%s); retrying", bootstrap, exc)
            await asyncio.sleep(1.0)
        finally:
            await admin.close()
