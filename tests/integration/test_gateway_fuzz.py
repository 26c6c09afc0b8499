"""Issue 7, scenario 5: fuzz every operation of the gateway's own OpenAPI document with schemathesis.

A real `conductor gateway` process (uvicorn on a real socket, auth mode jwt, the session's embedded broker) is
fuzzed through `/openapi.json` as it serves it: schema-valid and schema-violating requests for each operation.
Every response must be documented (status code, content type, body schema, headers), no 5xx may escape, invalid
input must be refused, and an operation that declares bearer auth must refuse a request without it.

The worker's views are a stub that knows every batch id (owned by the token's subject), so generated requests
reach the publish path instead of stopping at 404; every 202 is then looked up on the command topic.

`positive_data_acceptance` is not run: two rules of the POST are beyond JSON Schema and documented as such
(`requested_pipeline` must name a pipeline of the catalog: 422 UNKNOWN_PIPELINE; a body `batch_id` must equal
the path's: 400 BATCH_ID_MISMATCH), so schema-valid random data is rightly refused.
"""

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.pipelines import load_catalog
from contracts.topics import Topic
from gateway.main import create_app
from gateway.settings import GatewaySettings
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import read_to_end
from tests.support.processes import REPO
from tests.support.stub_worker import StubWorker
from tests.support.tokens import JWT_ENV, bearer, token

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.http_surface]

MAX_EXAMPLES = 50  # fuzzing-phase examples per operation (explicit examples and coverage cases come on top)
OWNER = "teacher-1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
    unsupported_method,
]


def _document() -> dict[str, Any]:
    """Return the OpenAPI document the gateway builds (in-process, at collection: schemathesis needs it then)."""
    settings = GatewaySettings(
        pipelines_file=REPO / "pipelines.yaml",
        auth_mode="jwt",
        jwt_secret=JWT_ENV["CONDUCTOR_GATEWAY_JWT_SECRET"],
        jwt_issuer=JWT_ENV["CONDUCTOR_GATEWAY_JWT_ISSUER"],
        jwt_audience=JWT_ENV["CONDUCTOR_GATEWAY_JWT_AUDIENCE"],
    )
    return create_app(settings).openapi()  # the document of auth mode jwt, as the fuzzed gateway serves it


DOCUMENT = _document()
OPERATIONS = sorted(f"{method.upper()} {path}" for path, ops in DOCUMENT["paths"].items() for method in ops)
CATALOG = load_catalog(REPO / "pipelines.yaml")
NAMES = [*CATALOG.names, *CATALOG.step_names]


class EveryBatchStub(StubWorker):
    """The worker stub, answering every batch id as a registered batch of OWNER."""

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "batches":
            with self._lock:
                if parts[1] not in self.batches:
                    self.register(parts[1], user_id=OWNER)
        return super()._answer(path, headers)


class Tally:
    """What the fuzzing did: cases sent per operation, status codes seen, correlation ids accepted (202)."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.accepted: set[str] = set()
        self.lock = threading.Lock()

    def add(self, operation: str, response: requests.Response) -> None:
        with self.lock:
            self.cases[operation] += 1
            self.statuses[response.status_code] += 1
            if response.status_code == 202:
                self.accepted.add(response.json()["correlation_id"])


@pytest.fixture(scope="module")
def gateway(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("gateway-fuzz")
    with EveryBatchStub() as stub:
        process = GatewayProcess(
            broker.url,
            workdir,
            free_port(),
            stub.url,
            CONDUCTOR_GATEWAY_RATE_LIMIT_ENABLED="false",
            CONDUCTOR_GATEWAY_STREAM_MAX_SECONDS="0.2",  # an event stream ends only then: each case reads to the end
            **JWT_ENV,
        )
        try:
            yield process.start_and_wait()
        finally:
            process.stop()


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # never through an environment proxy
        yield http


schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Give half the POST bodies a pipeline of the catalog: random names rarely name one, and the publish path
    is where it matters. Bodies whose name was mutated (negative data) or that carry a batch_id are left alone."""
    name = body.get("requested_pipeline") if isinstance(body, dict) else None
    if not isinstance(name, str) or not 0 < len(name) <= 100 or "batch_id" in body:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(NAMES).map(lambda known: {**body, "requested_pipeline": known}))


def test_the_gateway_serves_the_document_being_fuzzed(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        served = client.get("/openapi.json").json()
    assert served == DOCUMENT and len(OPERATIONS) >= 7


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_response_conforms_to_the_document(
    case: Any, gateway: GatewayProcess, session: requests.Session, tally: Tally
) -> None:
    """Examples, coverage (boundary and wrong-type values) and fuzzing phases, positive and negative data."""
    auth = bearer(token(OWNER, exp=int(time.time()) + 3600))
    response = case.call_and_validate(base_url=gateway.url, session=session, headers=auth, checks=CHECKS)
    tally.add(case.operation.label, response)


def test_the_gateway_logged_no_unhandled_error(gateway: GatewayProcess, tally: Tally) -> None:
    """Runs after the fuzzing: every operation was exercised and nothing escaped as a crash."""
    assert set(tally.cases) == set(OPERATIONS), tally.cases
    varied = [op for op in OPERATIONS if op.startswith(("POST", "GET /v1"))]
    assert all(tally.cases[op] >= MAX_EXAMPLES for op in varied), tally.cases
    log = gateway.logs()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]


def test_every_accepted_fuzzed_command_is_on_the_topic(gateway: GatewayProcess, broker: Broker, tally: Tally) -> None:
    """Runs after the fuzzing: each 202 it got was published exactly once."""
    assert tally.accepted, f"no fuzzed POST was accepted: {dict(tally.statuses)}"

    # A 202 means the broker acknowledged the command: the end offsets taken now cover every one of them, and
    # the whole topic up to them is read, so a command published twice (or late) is seen too.
    everything = asyncio.run(read_to_end(broker.bootstrap, [Topic.PIPELINE_COMMAND]))
    records = [r for r in everything if json.loads(r.value or b"{}")["correlation_id"] in tally.accepted]
    ids = Counter(json.loads(r.value or b"{}")["correlation_id"] for r in records)
    assert set(ids) == tally.accepted, f"{len(tally.accepted - set(ids))} accepted command(s) not on the topic"
    assert set(ids.values()) == {1}, {cid: n for cid, n in ids.items() if n != 1}
    for record in records:
        data = json.loads(record.value)["data"]
        assert CATALOG.accepts(data["requested_pipeline"]) and data["user_id"] == OWNER
        assert record.key == data["batch_id"].encode()
    print(
        f"\nfuzzing: {sum(tally.cases.values())} cases over {len(tally.cases)} operations {dict(tally.cases)}; "
        f"statuses {dict(sorted(tally.statuses.items()))}; {len(tally.accepted)} accepted commands all on the topic"
    )
