"""Watch a running benchmark: read Prometheus counters, time a backlog being drained, show progress."""

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse Prometheus text exposition into (name, labels, value) samples."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            out.append((match.group("name"), labels, float(match.group("value"))))
    return out


def counter_reader(url: str, name: str, **labels: str) -> Callable[[], float]:
    """Return a function summing the samples of counter `name` matching `labels` at `url` (0 when absent)."""
    client = httpx.Client(timeout=5.0)

    def read() -> float:
        text = client.get(url).text
        return sum(
            value
            for sample, got, value in parse_metrics(text)
            if sample == name and all(got.get(k) == v for k, v in labels.items())
        )

    return read


FAST_POLL = 0.02
SLOW_POLL = 0.5


class Progress:
    """One line per phase with a running count (rewritten in place on a terminal, printed every few s otherwise)."""

    def __init__(self, label: str, total: float | None = None, unit: str = "") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.tty = sys.stdout.isatty()
        self._last_print = 0.0
        self._started = time.monotonic()
        self.update(0)

    def _line(self, count: float) -> str:
        total = f"/{self.total:,.0f}" if self.total else ""
        return f"  {self.label:<44} {count:>10,.0f}{total} {self.unit}  {time.monotonic() - self._started:5.1f}s"

    def update(self, count: float) -> None:
        """Show the running count."""
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\r" + self._line(count))
            sys.stdout.flush()
        elif now - self._last_print >= 3.0:
            print(self._line(count), flush=True)
            self._last_print = now

    def done(self, count: float, note: str = "") -> None:
        """Finish the line."""
        line = self._line(count) + (f"  {note}" if note else "")
        print(("\r" if self.tty else "") + line, flush=True)


@dataclass
class Drain:
    """How fast a backlog was worked off: rate between the first observed progress and completion."""

    events: float
    seconds: float
    first_count: float
    timeline: list[tuple[float, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Return events per second over the measured window."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def time_drain(
    read: Callable[[], float],
    target: float,
    timeout: float,
    progress: Progress | None = None,
    baseline: float = 0.0,
    alive: Callable[[], bool] | None = None,
) -> Drain:
    """Poll `read` until it reaches `baseline + target`; measure from the first poll that saw progress.

    rate = (target - count at that first poll) / (time of completion - time of that first poll), so the events
    a batching worker processed before the first observation are not credited to the window. Polls are fast
    (20 ms) around the start and the expected end and sparse in between: each poll costs the worker CPU.
    """
    start: tuple[float, float] | None = None
    timeline: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        count = read() - baseline
        timeline.append((now, count))
        if progress:
            progress.update(count)
        if count > 0 and start is None:
            start = (now, count)
        if count >= target:
            break
        if now > deadline:
            raise TimeoutError(f"only {count:,.0f} of {target:,.0f} processed after {timeout:.0f}s")
        if alive is not None and not alive():
            raise RuntimeError("the process under test died")
        interval = FAST_POLL if start is not None else 0.05
        if start is not None and count > start[1] and now > start[0]:
            rate = (count - start[1]) / (now - start[0])
            interval = min(SLOW_POLL, max(FAST_POLL, (target - count) / rate / 4))
        time.sleep(interval)
    assert start is not None
    t0, c0 = start
    if progress:
        progress.done(count)
    return Drain(events=target - c0, seconds=timeline[-1][0] - t0, first_count=c0, timeline=timeline)
