# Batch Conductor: `make run` starts the product, `make test` runs every check. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint unit bench clean clients browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/conductor dev $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint clients browser
	$(BIN)/pytest --cov --cov-report=term:skip-covered --cov-report=xml
	$(BIN)/coverage report --include='contracts/*,streams/resolution.py,tables/projection.py' --fail-under=90

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
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "warning: wrk not installed; the gateway benchmark will fail to run"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml
