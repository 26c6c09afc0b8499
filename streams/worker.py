"""Run the Faust worker: create every topic with one partition count, then start the app."""

import asyncio
import logging

import faust

from conductor.kafka_admin import ensure_topics, wait_for_topics
from contracts.topics import all_topics


async def _prepare_topics(bootstrap: str, changelogs: list[str], partitions: int, replication_factor: int) -> None:
    """Create every topic, the tables' changelogs too (compacted, as Faust declares them), and wait until every
    broker's metadata lists them, so that the consumer group never starts on a partial view of them."""
    await ensure_topics(bootstrap, all_topics(), partitions, replication_factor)
    await ensure_topics(bootstrap, changelogs, partitions, replication_factor, config={"cleanup.policy": "compact"})
    await wait_for_topics(bootstrap, [*all_topics(), *changelogs])


def run_worker() -> int:
    """Start the worker in the foreground until SIGINT/SIGTERM; return its exit code."""
    from streams.app import app, load_modules, settings

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    load_modules()
    changelogs = sorted(table.changelog_topic.get_topic_name() for table in app.tables.values())
    asyncio.run(
        _prepare_topics(settings.bootstrap, changelogs, settings.topic_partitions, settings.topic_replication_factor)
    )
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner (kept at log levels WARNING and above) sets the root logger to DEBUG so that it can
    # spin on every record: every debug call in Faust and aiokafka then built a LogRecord per message, ~8% of the
    # worker's busy CPU at full load (bench/README.md).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
