"""Read a Prometheus counter's value from a real process's `/metrics`, for tests that check metrics by value."""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample_value(base_url: str, sample: str, **labels: str) -> float:
    """Return the sum of `sample` over the series carrying `labels` (0 while no such series exists yet)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
    return sum(
        float(found.value)
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items())
    )
