"""Ceiling for the gateway: a bare FastAPI endpoint with the gateway's body and path validation, and no Kafka.

    python -m bench.bare_api --port N

The same route shape, request model (`PipelineRequestBody`), path pattern and response model as the gateway's
`POST /v1/batches/{batch_id}/pipelines`, served by uvicorn the way the gateway is (one process, no access log).
"""

import argparse
import uuid
from typing import Annotated

from fastapi import FastAPI, Path, Response

from gateway.models import BATCH_ID_MAX_LENGTH, BATCH_ID_PATTERN, PipelineAccepted, PipelineRequestBody

BatchId = Annotated[str, Path(min_length=1, max_length=BATCH_ID_MAX_LENGTH, pattern=BATCH_ID_PATTERN)]


def create_app() -> FastAPI:
    """Return the bare app."""
    app = FastAPI()

    @app.post("/v1/batches/{batch_id}/pipelines", status_code=202, response_model=PipelineAccepted)
    async def request_pipeline(batch_id: BatchId, body: PipelineRequestBody, response: Response) -> PipelineAccepted:
        correlation_id = uuid.uuid4()
        status_url = f"/v1/batches/{batch_id}/pipelines/{correlation_id}"
        response.headers["Location"] = status_url
        return PipelineAccepted(
            batch_id=batch_id,
            requested_pipeline=body.requested_pipeline,
            correlation_id=correlation_id,
            status_url=status_url,
            batch_status_url=f"/v1/batches/{batch_id}/status",
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    """Serve the bare app on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_config=None, access_log=False,
                server_header=False, lifespan="on")  # fmt: skip


if __name__ == "__main__":
    main()
