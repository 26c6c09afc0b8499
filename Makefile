# Batch Conductor: `make run` starts the product, `make test` runs every check. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
QUIX_VENV := .venv-quix
QUIX_STAMP := $(QUIX_VENV)/.installed
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

.PHONY: run test test-faults lint unit bench lock clean kafka-tools clients browser

# Installs come from the lock files in requirements/ (every package pinned, with its hashes); `make lock` refreshes
# them. pip installs the tools (pip, uv, setuptools), uv the rest (parallel downloads). The venv is brought up to
# date whenever a lock file or pyproject.toml changes. The project itself goes in last, offline: a dependency that
# pyproject.toml declares but the lock lacks fails here instead of being fetched.
$(STAMP): requirements/tools.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements/tools.txt
	$(UV_INSTALL) --require-hashes -r requirements/dev.txt
	$(UV_INSTALL) --no-index --no-build-isolation -e '.[dev]' \
		|| { echo "requirements/dev.txt does not satisfy pyproject.toml: run 'make lock'" >&2; exit 1; }
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/conductor dev $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Coverage: each pytest run adds its data (and that of the worker, gateway and dev processes it starts, see
# [tool.coverage.run] in pyproject.toml) to .coverage; one report and the gate then read all of it.
# The suite runs twice: on the embedded broker (everything), then on Apache Kafka (integration and functional tests,
# without those of the gateway's HTTP surface, whose broker only takes the commands: marker http_surface, README).
# CONDUCTOR_TEST_BROKER / `pytest --broker kafka` picks one by hand.
test: lint kafka-tools clients browser
	$(BIN)/coverage erase
	$(BIN)/pytest --broker embedded --cov --cov-append --cov-report=
	$(BIN)/pytest tests/integration tests/functional --broker kafka -m "not http_surface and not cluster_faults" \
		--cov --cov-append --cov-report=
	$(BIN)/coverage report --skip-covered
	$(BIN)/coverage xml --quiet
	$(BIN)/coverage report --include='contracts/*,streams/resolution.py,tables/projection.py' --fail-under=90

# Faults of a 3-node Kafka cluster (issue 11; minutes each, so not in `make test`): CI runs them after it, see README.
test-faults: lint kafka-tools
	$(BIN)/pytest tests/integration/test_cluster_faults.py --broker kafka -m cluster_faults -s

# Apache Kafka for the tests' second pass: a JDK and Maven (Debian's packages when missing; the broker's jars then
# come from Maven Central on first use, see deploy/kafka/pom.xml).
kafka-tools:
	@command -v java >/dev/null && command -v mvn >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven) \
		|| { echo "install a JDK (17+) and Maven: apt-get install -y openjdk-17-jdk-headless maven" >&2; exit 1; }

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# The TypeScript client and the reference page (Node.js 20+ with npm): npm ci when a lockfile changed, build the page
# when its sources changed. `conductor dev` builds the page by itself when it is missing or stale.
CLIENT_DEPS := clients/typescript/node_modules/.package-lock.json
WEB_DEPS    := clients/web/node_modules/.package-lock.json
WEB_PAGE    := clients/web/dist/index.html

$(CLIENT_DEPS): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund
$(WEB_DEPS): clients/web/package-lock.json
	cd clients/web && npm ci --no-audit --no-fund
$(WEB_PAGE): $(CLIENT_DEPS) $(WEB_DEPS) $(shell find clients/web/src clients/typescript/src -type f) \
		clients/web/index.html clients/web/vite.config.ts
	cd clients/web && npm run build

clients: $(WEB_PAGE)

# Debian's Chromium for the browser tests (docs pages, reference page); Playwright drives it, it downloads nothing.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Benchmarks (not part of `make test`): bench-only packages, and wrk (Debian) for the gateway's HTTP load.
$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(UV_INSTALL) --require-hashes -r requirements/bench.txt
	$(UV_INSTALL) --no-index --no-build-isolation -e '.[dev,bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "warning: wrk not installed; the gateway benchmark will fail to run"
	touch $(BENCH_STAMP)

# The Quix Streams peer (bench/quix_peer.py) gets its own environment: quixstreams pins older pydantic releases.
$(QUIX_STAMP): $(STAMP) requirements/quix.txt
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(BIN)/uv pip install --quiet --python $(QUIX_VENV)/bin/python --require-hashes -r requirements/quix.txt
	touch $(QUIX_STAMP)

# Every phase on the embedded broker and, when java and mvn are present, on Apache Kafka; results in bench/out/
# (ignored). ARGS="--reference" also rewrites the committed bench/reference/ run and bench/README.md's table.
bench: $(BENCH_STAMP) $(QUIX_STAMP)
	$(BIN)/python -m bench $(ARGS)

# Re-resolve the lock files from pyproject.toml (needs PyPI). Pins still allowed are kept; to move them:
# `make lock LOCK_ARGS=--upgrade` (everything) or `LOCK_ARGS="--upgrade-package fastapi"` (one package).
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements/tools.txt
	$(UV_COMPILE) pyproject.toml --extra dev -o requirements/dev.txt
	$(UV_COMPILE) requirements/tools.in -c requirements/dev.txt -o requirements/tools.txt
	$(UV_COMPILE) pyproject.toml --extra dev --extra bench -c requirements/dev.txt -o requirements/bench.txt
	$(UV_COMPILE) pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt
	$(UV_COMPILE) requirements/quix.in -o requirements/quix.txt

clean:
	rm -rf $(VENV) $(QUIX_VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* coverage.xml
