"""The worker's routed views answer 503 (retryable) while the batch's owner cannot be placed or reached."""

from types import SimpleNamespace
from typing import Any

import pytest
from faust.web.exceptions import ServiceUnavailable
from yarl import URL

from tables import views


def _no_metadata(table_name: str, key: str) -> URL:
    raise TypeError("'NoneType' object is not iterable")  # Faust's router before the topic's metadata is known


async def test_a_view_answers_503_while_the_router_has_no_partition_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []

    async def handler(view: Any, request: Any, batch_id: str) -> Any:
        called.append(batch_id)
        return "answer"

    routed = views._owner_unreachable_is_unavailable(handler)
    request = SimpleNamespace(match_info={"batch_id": "b-1"})
    monkeypatch.setattr(views.app.router, "key_store", _no_metadata)
    with pytest.raises(ServiceUnavailable, match="owner of this batch is not known yet"):
        await routed(None, request, batch_id="b-1")
    assert called == []

    monkeypatch.setattr(views.app.router, "key_store", lambda table_name, key: URL("http://worker:6066"))
    assert await routed(None, request, batch_id="b-1") == "answer"
    assert called == ["b-1"]


async def test_a_view_answers_503_when_the_owning_worker_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handler(view: Any, request: Any, batch_id: str) -> Any:
        raise ConnectionRefusedError("owner gone")

    monkeypatch.setattr(views.app.router, "key_store", lambda table_name, key: URL("http://worker:6066"))
    with pytest.raises(ServiceUnavailable, match="unreachable: ConnectionRefusedError"):
        await views._owner_unreachable_is_unavailable(handler)(None, SimpleNamespace(match_info={"batch_id": "b"}), "b")
