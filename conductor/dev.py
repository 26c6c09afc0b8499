"""`conductor dev`: the embedded broker, N workers and the gateway in one command, stopped cleanly on Ctrl-C."""

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conductor.broker import BrokerError, die_with_parent
from conductor.brokers import create_broker
from conductor.kafka_admin import ensure_topics
from conductor.kafka_cluster import KafkaUnavailable
from conductor.waiting import http_ok
from conductor.web_build import WEB, WebBuildError, build_page
from contracts.topics import all_topics


class DevError(RuntimeError):
    """A dev-stack process did not start or died."""


@dataclass
class Child:
    """One `conductor` subprocess of the dev stack."""

    name: str
    args: list[str]
    ready_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch it in its own session (Ctrl-C reaches only the dev command, which stops children in order)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conductor.cli", *self.args],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # A worker whose broker vanished may ignore SIGTERM: SIGKILL is sure, and nothing is lost by it.
                preexec_fn=lambda: die_with_parent(signal.SIGKILL),
            )

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float) -> float:
        """Wait for its readiness URL to answer 200; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.alive():
                raise DevError(f"{self.name} exited early; see {self.log_path}")
            if http_ok(self.ready_url, timeout=1.0):
                return time.monotonic() - start
            time.sleep(0.25)
        raise DevError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class DevOptions:
    """What `conductor dev` starts."""

    broker_port: int = 9092
    gateway_port: int = 4001
    worker_port: int = 4002
    workers: int = 1
    demo: bool = False
    data_dir: Path = Path("data/dev")
    partitions: int = 4
    broker: str = "embedded"
    kafka_nodes: int = 1
    fresh: bool = False


def _say(text: str) -> None:
    print(f"[dev] {text}", flush=True)


def run_dev(options: DevOptions, stop: threading.Event | None = None) -> int:
    """Start everything, print the URLs, wait for Ctrl-C (or `stop`), stop gateway, workers, then broker."""
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kafka = options.broker == "kafka"
    if not kafka or options.fresh:
        # The embedded broker keeps nothing across restarts, so neither may the workers' local stores.
        shutil.rmtree(options.data_dir, ignore_errors=True)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    broker = create_broker(
        options.broker,
        port=options.broker_port,
        nodes=options.kafka_nodes,
        data_dir=options.data_dir / "kafka",
        log_dir=options.data_dir,
    )
    children: list[Child] = []
    try:
        if kafka:
            _say(
                f"starting Apache Kafka, {options.kafka_nodes} node(s), state in {options.data_dir} (kept; "
                "--fresh wipes it)..."
            )
        broker.start()
        _say(f"{broker.kind} broker on {broker.bootstrap}" + ("" if kafka else " (in memory)"))
        # On Kafka the services run the production profile (idempotent producers, consistency checks) with a
        # token between gateway and workers made for this run.
        env = {"CONDUCTOR_TOPIC_PARTITIONS": str(options.partitions), **broker.service_env(secrets.token_hex(16))}
        replication = int(env.get("CONDUCTOR_TOPIC_REPLICATION_FACTOR", "1"))
        asyncio.run(ensure_topics(broker.bootstrap, all_topics(), options.partitions, replication))
        page = _prepare_page(options)
        for index in range(options.workers):
            port = options.worker_port + index
            children.append(
                Child(
                    f"worker-{index + 1}",
                    [
                        "worker",
                        "--broker",
                        broker.url,
                        "--web-port",
                        str(port),
                        "--data-dir",
                        str(options.data_dir / f"worker-{index + 1}"),
                    ],
                    f"http://127.0.0.1:{port}/healthz",
                    options.data_dir / f"worker-{index + 1}.log",
                    env,
                )
            )
        gateway = Child(
            "gateway",
            [
                "gateway",
                "--broker",
                broker.url,
                "--worker-url",
                f"http://127.0.0.1:{options.worker_port}",
                "--port",
                str(options.gateway_port),
            ],
            f"http://127.0.0.1:{options.gateway_port}/healthz",
            options.data_dir / "gateway.log",
            {**env, "CONDUCTOR_GATEWAY_WEB_DIR": str(page)} if page else env,
        )
        children.append(gateway)
        for child in children:
            child.start()
        _say(f"starting {options.workers} worker(s) and the gateway (joining the consumer group takes ~5-10 s)...")
        for child in children:
            _say(f"{child.name} ready in {child.wait_ready(120):.1f}s")
        if options.demo:
            from conductor.demo import DEMO_BATCHES, seed_demo

            owner = os.environ.get("CONDUCTOR_GATEWAY_DEV_USER", "dev-user")
            sent = asyncio.run(seed_demo(broker.bootstrap, owner))
            _say(f"demo: {len(DEMO_BATCHES)} batches owned by '{owner}' ({sent} events):")
            for batch, (*_, hint) in DEMO_BATCHES.items():
                _say(f"  {batch:18} {hint}")
        _print_urls(options, page is not None)
        while not stop.wait(0.5):
            dead = [c.name for c in children if not c.alive()]
            if dead:
                _say(f"{', '.join(dead)} stopped unexpectedly; shutting down (logs in {options.data_dir})")
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except KafkaUnavailable as exc:
        _say(f"error: {exc}")
        return 2
    except (DevError, BrokerError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        _say("stopping gateway, workers, then broker...")
        for child in reversed(children):
            child.stop()
        broker.stop()
        _say("stopped")


def _prepare_page(options: DevOptions) -> Path | None:
    """Return the built reference page for the gateway to serve, building it first if needed; None without it."""
    if not (WEB / "package.json").is_file():
        return None  # an installed package without the repository's clients/
    try:
        return build_page(options.data_dir / "web-build.log", _say)
    except WebBuildError as exc:
        _say(f"warning: no reference page: {exc}")
        return None


def _print_urls(options: DevOptions, page: bool) -> None:
    gw = f"http://127.0.0.1:{options.gateway_port}"
    wk = f"http://127.0.0.1:{options.worker_port}"
    example = "demo-spellchecked" if options.demo else "<batch_id>"
    lines = [f"reference page     {gw}/app/" + ("?batch=demo-spellchecked" if options.demo else "")] if page else []
    lines += [
        f"gateway API docs   {gw}/docs   (ReDoc: {gw}/redoc)",
        f"gateway metrics    {gw}/metrics",
        f"worker stats       {wk}/   (assignment: {wk}/assignment/, router: {wk}/router/)",
        f"worker metrics     {wk}/metrics",
        f"try: curl -s -X POST {gw}/v1/batches/{example}/pipelines -H 'Content-Type: application/json' "
        '-d \'{"requested_pipeline": "ai_feedback"}\'',
        f"     curl -s {gw}/v1/batches/{example}/status",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        _say(line)
