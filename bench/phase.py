"""One benchmark phase: its own fresh embedded broker (memory-only), topics and working directory."""

import asyncio
import shutil
from pathlib import Path
from types import TracebackType

from bench.ceilings import PASSTHROUGH_OUT
from bench.procs import Worker, stop_all
from conductor.broker import EmbeddedBroker
from conductor.kafka_admin import ensure_topics
from contracts.topics import all_topics

PARTITIONS = 4  # the worker's default topic_partitions


class Phase:
    """A fresh broker per phase: the platform's topic names are fixed, so one phase's events must not leak into
    the next one's consumers."""

    def __init__(self, name: str, root: Path, worker_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.workdir = root / name
        self.worker_env = dict(worker_env or {})
        self.broker = EmbeddedBroker(log_path=None)

    def __enter__(self) -> "Phase":
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.broker.log_path = self.workdir / "broker.log"
        self.broker.start()
        asyncio.run(ensure_topics(self.broker.bootstrap, [*all_topics(), PASSTHROUGH_OUT], PARTITIONS))
        return self

    def worker(self, name: str = "worker", **env: str) -> Worker:
        """Return a (not yet started) worker on this phase's broker."""
        return Worker(self.broker, self.workdir, name, **{**self.worker_env, **env})

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        stop_all()  # workers first: a worker whose broker vanished spends ~10 s retrying
        self.broker.stop()
