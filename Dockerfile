# One image for both processes: `conductor worker` and `conductor gateway` (see docker-compose.yml).
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
# Every dependency pinned with its hashes (requirements/runtime.txt, refreshed by `make lock`), then the project alone.
COPY requirements/runtime.txt ./requirements/runtime.txt
RUN pip install --require-hashes -r requirements/runtime.txt
COPY contracts ./contracts
COPY streams ./streams
COPY tables ./tables
COPY gateway ./gateway
COPY conductor ./conductor
COPY pipelines.yaml ./
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app conductor \
    && mkdir -p /data && chown conductor /data

USER conductor
ENV CONDUCTOR_PIPELINES_FILE=/app/pipelines.yaml \
    CONDUCTOR_WORKER_DATA_DIR=/data
EXPOSE 4001 4002
ENTRYPOINT ["conductor"]
CMD ["--help"]
