"""Schemathesis hooks for the contract test (loaded by `schemathesis run` through SCHEMATHESIS_HOOKS).

One rule of the POST is beyond JSON Schema: a `batch_id` in the body must equal the path's (else 400
BATCH_ID_MISMATCH, as the wire contract says). A schema cannot tie a body field to a path parameter, so schema-valid
bodies that carry a `batch_id` get the path's: random ones would be refused, rightly, and fail the
`positive_data_acceptance` check. Negative cases are left as generated.
"""

from typing import Any
from urllib.parse import unquote

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Give a positive POST body's `batch_id` the path's batch id."""
    meta = getattr(case, "meta", None)
    positive = meta is None or meta.generation.mode.is_positive
    body = case.body
    if positive and isinstance(body, dict) and isinstance(body.get("batch_id"), str) and case.path_parameters:
        batch_id = case.path_parameters.get("batch_id")
        if isinstance(batch_id, str):
            case.body = {**body, "batch_id": unquote(batch_id)}  # path parameters are kept percent-encoded
    return case
