"""Run the Faust worker: create every topic with one partition count, then start the app."""

import asyncio
import logging

import faust

from conductor.kafka_admin import ensure_topics
from contracts.topics import all_topics


def run_worker() -> int:
    """Start the worker in the foreground until SIGINT/SIGTERM; return its exit code."""
    from streams.app import app, load_modules, settings

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(
        ensure_topics(settings.bootstrap, all_topics(), settings.topic_partitions, settings.topic_replication_factor)
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    load_modules()
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
