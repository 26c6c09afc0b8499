"""docker-compose.yml, the Dockerfile and Prometheus config agree with the code's settings and CLI (no engine here)."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from conductor.cli import build_parser
from conductor.kafka_cluster import KafkaCluster, kafka_version
from gateway.settings import GatewaySettings
from streams.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices if str(choice).isupper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def resolved_env(service: str) -> dict[str, str]:
    """The service's environment with ${VAR:?...} / ${VAR:-default} substituted as compose would."""

    def substitute(value: str) -> str:
        return re.sub(r"\$\{(\w+):([?-])([^}]*)\}", lambda m: m.group(3) if m.group(2) == "-" else "x" * 40, value)

    return {k: substitute(str(v)) for k, v in SERVICES[service]["environment"].items()}


KAFKA_NODES = ["kafka-1", "kafka-2", "kafka-3"]
# What only the local cluster sets: its loopback listeners and dirs, and thread counts for 2-core machines.
LOCAL_ONLY = {
    "node.id",
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
    "num.network.threads",
    "num.io.threads",
}


def kafka_properties(service: str) -> dict[str, str]:
    """A compose Kafka service's settings as server.properties keys (KAFKA_FOO_BAR -> foo.bar)."""
    env = SERVICES[service]["environment"]
    kafka = {k.removeprefix("KAFKA_"): str(v) for k, v in env.items() if k.startswith("KAFKA_")}
    return {k.lower().replace("_", "."): v for k, v in kafka.items()}


def test_production_kafka_is_a_three_node_kraft_quorum_with_replication_factor_3() -> None:
    voters = {SERVICES[name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for name in KAFKA_NODES}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert [SERVICES[name]["environment"]["KAFKA_NODE_ID"] for name in KAFKA_NODES] == ["1", "2", "3"]
    assert len({str(SERVICES[name]["volumes"]) for name in KAFKA_NODES}) == 3  # a log dir each
    assert all("healthcheck" in SERVICES[name] for name in KAFKA_NODES)
    assert resolved_env("worker")["CONDUCTOR_TOPIC_REPLICATION_FACTOR"] == "3"


@pytest.mark.parametrize("service", KAFKA_NODES)
def test_compose_kafka_runs_what_the_local_cluster_runs(service: str) -> None:
    """Same release as deploy/kafka/pom.xml, same settings as `conductor kafka --nodes 3` (listeners aside)."""
    assert SERVICES[service]["image"] == f"apache/kafka:{kafka_version()}"
    local = KafkaCluster(nodes=3, port=9092, data_dir=Path("/nonexistent")).members[0].properties()
    compose = kafka_properties(service)
    expected = {k: v for k, v in local.items() if k not in LOCAL_ONLY}
    assert {k: compose.get(k) for k in expected} == expected
    extra = set(compose) - set(local) - {"log.dirs"}
    assert not extra, f"compose sets what the local cluster does not: {sorted(extra)}"


@pytest.mark.parametrize(("service", "settings"), [("worker", WorkerSettings), ("gateway", GatewaySettings)])
def test_every_env_var_is_a_real_setting(service: str, settings: type[BaseSettings]) -> None:
    unknown = {k for k in resolved_env(service) if k.startswith("CONDUCTOR_")} - env_names(settings)
    assert not unknown, f"{service} sets env vars no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize(("service", "settings"), [("worker", WorkerSettings), ("gateway", GatewaySettings)])
def test_compose_environment_is_valid_production_config(
    service: str, settings: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in list(__import__("os").environ) if k.startswith("CONDUCTOR_")]:
        monkeypatch.delenv(key)
    for key, value in resolved_env(service).items():
        monkeypatch.setenv(key, value)
    loaded: Any = settings()
    assert loaded.broker == "kafka://kafka-1:9092,kafka://kafka-2:9092,kafka://kafka-3:9092"


@pytest.mark.parametrize("service", ["worker", "gateway"])
def test_commands_are_conductor_subcommands(service: str) -> None:
    args = build_parser().parse_args(SERVICES[service]["command"])
    assert args.command == service


def test_ports_agree_between_settings_healthchecks_and_scrapes() -> None:
    worker_env, gateway_env = resolved_env("worker"), resolved_env("gateway")
    worker_port, gateway_port = worker_env["CONDUCTOR_WORKER_WEB_PORT"], gateway_env["CONDUCTOR_GATEWAY_PORT"]
    assert f":{worker_port}/healthz" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert f":{gateway_port}/healthz" in " ".join(SERVICES["gateway"]["healthcheck"]["test"])
    assert SERVICES["gateway"]["ports"] == [f"{gateway_port}:{gateway_port}"]
    assert gateway_env["CONDUCTOR_GATEWAY_WORKER_URL"] == f"http://worker:{worker_port}"
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["conductor-gateway"]["static_configs"][0]["targets"] == [f"gateway:{gateway_port}"]
    assert jobs["conductor-worker"]["dns_sd_configs"][0]["port"] == int(worker_port)


def test_each_worker_replica_has_its_own_store_and_address() -> None:
    worker = SERVICES["worker"]
    assert "/data" in worker["volumes"]  # anonymous volume: one per replica
    assert worker["environment"]["CONDUCTOR_WORKER_ADVERTISE_HOSTNAME"] == "true"
    assert "container_name" not in worker and "ports" not in worker  # both would prevent --scale


def test_dockerfile_ships_every_package_and_the_cli() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ["contracts", "streams", "tables", "gateway", "conductor", "pipelines.yaml"]:
        assert f"COPY {package} " in dockerfile
    assert 'ENTRYPOINT ["conductor"]' in dockerfile
    assert SERVICES["worker"]["image"] == SERVICES["gateway"]["image"]


def test_the_image_installs_the_locked_dependencies() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/runtime.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert (REPO / "requirements" / "runtime.txt").exists()
