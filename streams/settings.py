"""Worker settings: one object, read once from CONDUCTOR_* environment variables (CLI flags set those)."""

import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _shared(name: str) -> AliasChoices:
    # Settings shared by the gateway and the worker keep one env name (CONDUCTOR_<NAME>).
    return AliasChoices(f"CONDUCTOR_{name}", f"CONDUCTOR_WORKER_{name}")


class WorkerSettings(BaseSettings):
    """Everything the Faust worker process is configured by."""

    model_config = SettingsConfigDict(env_prefix="CONDUCTOR_WORKER_", extra="ignore", populate_by_name=True)

    broker: str = Field("kafka://127.0.0.1:9092", validation_alias=_shared("BROKER"))
    topic_partitions: int = Field(4, ge=1, validation_alias=_shared("TOPIC_PARTITIONS"))
    topic_replication_factor: int = Field(1, ge=1, validation_alias=_shared("TOPIC_REPLICATION_FACTOR"))
    pipelines_file: Path = Field(Path("pipelines.yaml"), validation_alias=_shared("PIPELINES_FILE"))
    internal_token: str = Field("", validation_alias=_shared("INTERNAL_TOKEN"))

    app_id: str = "batch_conductor"  # wire name: renaming it loses offsets and table state
    profile: Literal["local", "production"] = "local"
    web_host: str = "127.0.0.1"
    web_bind: str = "0.0.0.0"
    web_port: int = Field(4002, ge=1, le=65535)
    canonical_url: str = ""  # advertised URL other workers proxy table views to; default http://web_host:web_port
    advertise_hostname: bool = False  # advertise this machine's hostname (a container's, when scaled by replicas)
    data_dir: Path = Path("data/worker")
    store: str = "rocksdb://"
    log_level: str = "info"

    # Kafka group timing: short for local runs (join in ~5 s), Faust's defaults for production.
    broker_session_timeout: float | None = None
    broker_heartbeat_interval: float | None = None
    broker_rebalance_timeout: float | None = None
    # The embedded broker under-reports end offsets; its consistency check must be off there (on for real Kafka).
    recovery_consistency_check: bool | None = None
    # ... and its end offsets are probed by reading past them (streams/broker_compat.py); off for real Kafka.
    exact_end_offsets: bool | None = None
    # Idempotent producer: on in production (Apache Kafka); the embedded broker refuses InitProducerId (local).
    producer_idempotence: bool | None = None
    # Larger input messages go to the DLQ unread (a DLQ record keeps a preview of them).
    max_message_bytes: int = Field(1024 * 1024, ge=1024)
    max_poll_records: int = 2000
    stream_buffer_maxsize: int = 16384
    # Diagnostics only: comma-separated Faust consumer fixes to leave out (streams/faust_fixes.py FIXES), to show
    # what each one prevents. Never set in production.
    disable_faust_fixes: str = ""

    @model_validator(mode="after")
    def _profile_defaults(self) -> "WorkerSettings":
        local = self.profile == "local"
        if self.broker_session_timeout is None:
            self.broker_session_timeout = 10.0 if local else 60.0
        if self.broker_heartbeat_interval is None:
            self.broker_heartbeat_interval = 1.0 if local else 3.0
        if self.broker_rebalance_timeout is None:
            self.broker_rebalance_timeout = 3.0 if local else 60.0
        if self.recovery_consistency_check is None:
            self.recovery_consistency_check = not local
        if self.exact_end_offsets is None:
            self.exact_end_offsets = local
        if self.producer_idempotence is None:
            self.producer_idempotence = not local
        if self.advertise_hostname:
            self.web_host = socket.gethostname()
        if not self.canonical_url:
            self.canonical_url = f"http://{self.web_host}:{self.web_port}"
        if self.profile == "production" and not self.internal_token:
            raise ValueError("profile 'production' requires CONDUCTOR_INTERNAL_TOKEN for the worker views")
        return self

    def consumer_options(self) -> dict[str, Any]:
        """Return the Faust group and fetch tuning (shared by the worker and the benchmark's bare-Faust ceiling)."""
        return {
            "processing_guarantee": "at_least_once",
            "topic_partitions": self.topic_partitions,
            "key_serializer": "raw",
            "broker_session_timeout": self.broker_session_timeout,
            "broker_heartbeat_interval": self.broker_heartbeat_interval,
            "broker_rebalance_timeout": self.broker_rebalance_timeout,
            "broker_max_poll_records": self.max_poll_records,
            "stream_buffer_maxsize": self.stream_buffer_maxsize,
            "producer_acks": -1,
        }

    @property
    def bootstrap(self) -> str:
        """Return the broker list as aiokafka wants it (`host:port,...`)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(","))

    @property
    def faust_broker(self) -> str:
        """Return the broker list as Faust wants it (`kafka://host:port;...`)."""
        return ";".join(f"kafka://{hostport}" for hostport in self.bootstrap.split(","))


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    """Return the process's settings, read once."""
    return WorkerSettings()
