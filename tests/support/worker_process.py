"""A real `conductor worker` for tests (see tests/support/processes.py)."""

from tests.support.processes import WorkerProcess, start_worker

__all__ = ["WorkerProcess", "start_worker"]
