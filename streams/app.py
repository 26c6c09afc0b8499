"""THE Faust app of the worker, configured from settings (read once, from the environment)."""

import faust

from contracts.pipelines import load_catalog
from streams.broker_compat import install_exact_end_offsets, install_short_fetch_wait
from streams.faust_fixes import install_fixes
from streams.sensors import setup_sensors
from streams.settings import get_settings

settings = get_settings()
catalog = load_catalog(settings.pipelines_file)
# Any broker: Faust lost input messages around rebalances and restarts (streams/faust_fixes.py).
install_fixes(disabled=settings.disable_faust_fixes)
if settings.exact_end_offsets:
    install_exact_end_offsets(settings.bootstrap)
if settings.profile == "local":
    install_short_fetch_wait()  # the embedded broker holds fetches for their whole wait (broker_compat.py)

app = faust.App(
    settings.app_id,
    broker=settings.faust_broker,
    store=settings.store,
    datadir=str(settings.data_dir),
    autodiscover=False,
    **settings.consumer_options(),
    topic_replication_factor=settings.topic_replication_factor,
    topic_allow_declare=True,
    value_serializer="json",
    recovery_consistency_check=settings.recovery_consistency_check,
    # Faust's defaults (no linger, 16 KiB batches) sent a produce request for nearly every changelog or output
    # record; a 1 ms linger and larger batches cut that CPU for a small latency cost (bench/README.md).
    producer_linger=0.001,
    producer_max_batch_size=1024 * 1024,
    producer_enable_idempotence=settings.producer_idempotence,
    web_enabled=True,
    web_host=settings.web_host,
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    canonical_url=settings.canonical_url,
    web_stats_enabled=True,
    web_metrics_enabled=True,
    web_router_enabled=True,
    # Faust's /table/ pages serve table rows to anyone, past the internal token: the token-checked views in
    # tables/views.py are the only way in (tests/integration/test_internal_token.py).
    web_tables_enabled=False,
    table_cleanup_interval=60.0,
)
setup_sensors(app, name_prefix="conductor_faust")


def load_modules() -> None:
    """Import the modules that register tables, agents and views on the app (explicit, no autodiscovery)."""
    import streams.agents  # noqa: F401
    import tables.views  # noqa: F401
