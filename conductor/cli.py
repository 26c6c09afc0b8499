"""`conductor`: validate and resolve pipelines, and run the broker, worker and gateway."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.pipelines import PipelineCatalog, PipelineError, load_catalog

DEFAULT_PIPELINES = Path("pipelines.yaml")
EXIT_INVALID = 2


def _load(path: Path) -> PipelineCatalog:
    try:
        return load_catalog(path)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None


def _pipelines_check(args: argparse.Namespace) -> int:
    catalog = _load(args.config)
    print(f"{args.config}: {len(catalog.names)} pipeline(s) valid")
    for name in catalog.names:
        print(f"  {name}: {' -> '.join(s.name for s in catalog.plan(name))}")
    return 0


def _pipelines_resolve(args: argparse.Namespace) -> int:
    from streams.resolution import resolve, summarize

    catalog = _load(args.config)
    unknown = sorted(set(args.completed) - set(catalog.step_names))
    if unknown:
        print(f"error: unknown step(s) in --completed: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_INVALID
    try:
        resolution = resolve(catalog, args.name, frozenset(args.completed))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"final_pipeline": resolution.final_pipeline, "pruned_steps": resolution.pruned_steps}))
    else:
        print(summarize("<batch>", args.name, resolution))
    return 0


def _stop_on_ctrl_c_or_sigterm() -> Any:
    """Return an event set by SIGINT (Ctrl-C) or SIGTERM.

    Handlers of our own for both: a process started in the background by a non-interactive shell inherits SIGINT
    ignored, and Python then raises no KeyboardInterrupt (seen: `conductor kafka` under a backgrounded CI run never
    stopped on the test's SIGINT).
    """
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _broker(args: argparse.Namespace) -> int:

    from conductor.broker import EmbeddedBroker

    stop = _stop_on_ctrl_c_or_sigterm()
    with EmbeddedBroker(port=args.port, host=args.host) as broker:
        print(f"embedded broker (Tansu, in-memory) listening on {broker.bootstrap}; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                print("error: broker exited", file=sys.stderr)
                return 1
    print("broker stopped")
    return 0


def _kafka(args: argparse.Namespace) -> int:

    from conductor.broker import BrokerError
    from conductor.kafka_cluster import KafkaCluster, KafkaUnavailable, kafka_version

    stop = _stop_on_ctrl_c_or_sigterm()
    cluster = KafkaCluster(nodes=args.nodes, port=args.port, data_dir=args.data_dir, host=args.host)
    print(
        f"starting Apache Kafka {kafka_version()} (KRaft), {args.nodes} node(s), data in {cluster.data_dir}...",
        flush=True,
    )
    try:
        cluster.start()
    except KafkaUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        for node in cluster.members:
            print(
                f"  node {node.node_id}: clients {node.bootstrap}, controller {cluster.host}:{node.controller_port}, "
                f"log {node.log_path}"
            )
        print(f"bootstrap: {cluster.bootstrap}", flush=True)
        print(
            f"  e.g. CONDUCTOR_BROKER={cluster.url} conductor worker --profile production; Ctrl-C to stop", flush=True
        )
        while not stop.wait(0.5):
            dead = [n.node_id for n in cluster.members if not n.alive()]
            if dead:
                print(f"error: node(s) {dead} exited; see their server.log", file=sys.stderr)
                return 1
    finally:
        print("stopping Kafka (controlled shutdown)...", flush=True)
        cluster.stop()
    print("Kafka stopped")
    return 0


def _add_kafka(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    kafka = sub.add_parser(
        "kafka",
        help="run Apache Kafka (KRaft, from Maven Central) on loopback in the foreground",
        description=(
            "Run a local Apache Kafka cluster: every node is controller and broker. Node i serves clients on "
            "port + i - 1 and its controller on port + 100 + i - 1. State (topics, offsets, table changelogs) lives "
            "under --data-dir and survives a restart; remove that directory to start afresh. Needs java and, on "
            "first use, mvn (the jars are resolved once into ~/.cache/batch-conductor/kafka or CONDUCTOR_KAFKA_CACHE)."
        ),
    )
    kafka.add_argument(
        "--nodes",
        type=int,
        choices=(1, 3),
        default=1,
        help="1 node, or a 3-node quorum with replication factor 3 and min.insync.replicas 2 (default: %(default)s)",
    )
    kafka.add_argument("--port", type=int, default=9092, help="client port of node 1 (default: %(default)s)")
    kafka.add_argument(
        "--data-dir", type=Path, default=Path("data/kafka"), help="log dirs and cluster id (default: %(default)s)"
    )
    kafka.add_argument("--host", default="127.0.0.1", help="listener address (default: %(default)s)")
    kafka.set_defaults(func=_kafka)


def _flags_to_env(args: argparse.Namespace, names: dict[str, str]) -> None:
    """Hand CLI flags to the process's settings object, which reads CONDUCTOR_* variables once."""
    import os

    for attr, env in names.items():
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[env] = str(value)


def _print_setting_errors(process: str, exc: Any) -> None:
    """Print one `error:` line per invalid setting of a pydantic ValidationError (no input values: secrets)."""
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        print(f"error: {process} setting {where}: {error['msg']}", file=sys.stderr)


def _worker(args: argparse.Namespace) -> int:
    _flags_to_env(
        args,
        {
            "broker": "CONDUCTOR_BROKER",
            "web_port": "CONDUCTOR_WORKER_WEB_PORT",
            "web_host": "CONDUCTOR_WORKER_WEB_HOST",
            "data_dir": "CONDUCTOR_WORKER_DATA_DIR",
            "profile": "CONDUCTOR_WORKER_PROFILE",
            "pipelines": "CONDUCTOR_PIPELINES_FILE",
        },
    )
    from pydantic import ValidationError

    from streams.settings import get_settings

    try:
        get_settings()  # read once here, so that an unsafe or invalid setting is an error line, not a traceback
    except ValidationError as exc:
        _print_setting_errors("worker", exc)
        return EXIT_INVALID
    from streams.worker import run_worker

    return run_worker()


def _add_worker(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser(
        "worker",
        help="run the Faust stream worker (projects events, resolves commands)",
        description="Run the Faust worker. Every flag also has an environment variable; flags win.",
    )
    worker.add_argument("--broker", help="Kafka broker URL(s) [CONDUCTOR_BROKER, default kafka://127.0.0.1:9092]")
    worker.add_argument("--web-port", type=int, help="worker web port [CONDUCTOR_WORKER_WEB_PORT, default 4002]")
    worker.add_argument("--web-host", help="host other workers reach this one at [CONDUCTOR_WORKER_WEB_HOST]")
    worker.add_argument("--data-dir", type=Path, help="local RocksDB state [CONDUCTOR_WORKER_DATA_DIR, data/worker]")
    worker.add_argument(
        "--profile", choices=["local", "production"], help="timeouts and safety defaults [CONDUCTOR_WORKER_PROFILE]"
    )
    worker.add_argument("--pipelines", type=Path, help="pipelines file [CONDUCTOR_PIPELINES_FILE, pipelines.yaml]")
    worker.set_defaults(func=_worker)


def _dev(args: argparse.Namespace) -> int:
    from conductor.dev import DevOptions, run_dev

    return run_dev(
        DevOptions(
            broker_port=args.broker_port,
            gateway_port=args.gateway_port,
            worker_port=args.worker_port,
            workers=args.workers,
            demo=args.demo,
            data_dir=args.data_dir,
            broker=args.broker,
            kafka_nodes=args.kafka_nodes,
            fresh=args.fresh,
        )
    )


def _add_dev(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dev = sub.add_parser(
        "dev",
        help="run the whole flow locally: a broker, worker(s) and the gateway (Ctrl-C stops all)",
        description="Start a broker (embedded or Apache Kafka), N workers and the gateway; print their URLs; "
        "stop all on Ctrl-C.",
    )
    dev.add_argument("--demo", action="store_true", help="register sample batches with some steps already done")
    dev.add_argument("--workers", type=int, default=1, help="number of workers (default: %(default)s)")
    dev.add_argument(
        "--broker",
        choices=["embedded", "kafka"],
        default="embedded",
        help="embedded: Tansu, in memory, needs only Python; kafka: Apache Kafka (needs java and mvn), state kept "
        "under --data-dir across restarts (default: %(default)s)",
    )
    dev.add_argument("--kafka-nodes", type=int, choices=(1, 3), default=1, help="Kafka nodes (default: %(default)s)")
    dev.add_argument("--fresh", action="store_true", help="with --broker kafka: wipe --data-dir first (start afresh)")
    dev.add_argument("--broker-port", type=int, default=9092, help="broker port, node 1's (default: %(default)s)")
    dev.add_argument("--gateway-port", type=int, default=4001, help="gateway port (default: %(default)s)")
    dev.add_argument(
        "--worker-port", type=int, default=4002, help="first worker's web port; others count up (default: %(default)s)"
    )
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/dev"),
        help="logs, worker stores and Kafka's data; wiped at start with the embedded broker (%(default)s)",
    )
    dev.set_defaults(func=_dev)


def _add_pipelines(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pipelines = sub.add_parser("pipelines", help="validate and resolve pipelines.yaml")
    psub = pipelines.add_subparsers(dest="pipelines_command", required=True, metavar="{check,resolve}")
    check = psub.add_parser("check", help="validate the file and print each pipeline's order (exit 2 if invalid)")
    check.add_argument("--config", type=Path, default=DEFAULT_PIPELINES, help="pipelines file (default: %(default)s)")
    check.set_defaults(func=_pipelines_check)
    resolve = psub.add_parser(
        "resolve", help="resolve a pipeline (or a bare step) for a batch whose --completed steps are done"
    )
    resolve.add_argument("name", help="pipeline name, or a step name (the step plus its dependencies)")
    resolve.add_argument("--config", type=Path, default=DEFAULT_PIPELINES, help="pipelines file (default: %(default)s)")
    resolve.add_argument(
        "--completed",
        nargs="*",
        default=[],
        metavar="STEP",
        help="steps complete for every essay of the batch",
    )
    resolve.add_argument("--json", action="store_true", help='print {"final_pipeline": [...], "pruned_steps": [...]}')
    resolve.set_defaults(func=_pipelines_resolve)


def _add_broker(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    broker = sub.add_parser("broker", help="run the embedded Kafka-compatible broker in the foreground")
    broker.add_argument("--port", type=int, default=9092, help="listener port (default: %(default)s)")
    broker.add_argument("--host", default="127.0.0.1", help="listener address (default: %(default)s)")
    broker.set_defaults(func=_broker)


def _gateway(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from contracts.pipelines import PipelineError
    from gateway.main import run
    from gateway.settings import GatewaySettings

    flags = {
        "broker": args.broker,
        "worker_url": args.worker_url,
        "host": args.host,
        "port": args.port,
        "auth_mode": args.auth_mode,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "pipelines_file": args.pipelines,
    }
    try:
        settings = GatewaySettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        _print_setting_errors("gateway", exc)
        return EXIT_INVALID
    try:
        run(settings)
    except (PipelineError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0


def _add_gateway(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    gateway = sub.add_parser(
        "gateway",
        help="run the client-facing HTTP gateway (settings from CONDUCTOR_GATEWAY_* env; flags override)",
    )
    gateway.add_argument("--broker", help="Kafka broker(s), kafka://host:port[,…] (env CONDUCTOR_BROKER)")
    gateway.add_argument("--worker-url", help="the worker's web URL (env CONDUCTOR_GATEWAY_WORKER_URL)")
    gateway.add_argument("--host", help="listen address (default 127.0.0.1; env CONDUCTOR_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (default 4001; env CONDUCTOR_GATEWAY_PORT)")
    gateway.add_argument("--auth-mode", choices=["none", "jwt"], help="env CONDUCTOR_GATEWAY_AUTH_MODE")
    gateway.add_argument("--pipelines", type=Path, help="pipelines file (env CONDUCTOR_PIPELINES_FILE)")
    gateway.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    gateway.add_argument("--log-format", choices=["json", "text"])
    gateway.set_defaults(func=_gateway)


def build_parser() -> argparse.ArgumentParser:
    """Return the `conductor` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="conductor",
        description="Batch Conductor: resolves essay-processing pipeline requests into ordered, state-aware steps.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_pipelines(sub)
    _add_broker(sub)
    _add_kafka(sub)
    _add_worker(sub)
    _add_dev(sub)
    _add_gateway(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `conductor` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
