# Two entry points for a fresh machine: `make serve` runs the hub, `make test` runs every check.
# Both create .venv and node_modules/ by themselves (PyPI and the npm registry).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CONFIG ?= config.toml
# `make serve LOG_JSON=1`: every log line as one JSON object (docs/observability.md).
LOG_JSON ?=
LOG_FLAGS := $(if $(LOG_JSON),--log-json)

.PHONY: serve test lint typecheck bench clean

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,postgres,fast]"
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: $(PY_STAMP) $(NODE_STAMP)
	$(BIN)/mcp-hub migrate --config $(CONFIG) $(LOG_FLAGS)
	$(BIN)/mcp-hub serve --config $(CONFIG) $(LOG_FLAGS)

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/pyright

# pytest-xdist: the tests mostly wait on subprocesses and sockets, so more workers than cores pay. Each test file
# stays on one worker (`loadfile`), so a module's hub, npm peers or browser start once; the slowest files go first
# (SLOWEST_FILES in tests/conftest.py), not last where the default largest-file-first order puts them.
# `make test TEST_WORKERS=0` runs them in this one process.
TEST_WORKERS ?= 4

test: $(PY_STAMP) $(NODE_STAMP) lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The full benchmark report (docs/benchmarks.md) into $(BENCH_OUT): each script's printed report (.txt), every
# figure (.json) and the chart (chart.svg). Extra options per script, e.g.
# `make bench BENCH_APPROVAL_ARGS='--extra-config @bus.toml'` or `BENCH_OVERHEAD_ARGS='--quick'`.
BENCH_OUT ?= bench-results
BENCH_OVERHEAD_ARGS ?= --wait-quiet 120
BENCH_APPROVAL_ARGS ?=
BENCH_CATALOG_ARGS ?=

bench: $(PY_STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/overhead.py --json $(BENCH_OUT)/overhead.json $(BENCH_OVERHEAD_ARGS) > $(BENCH_OUT)/overhead.txt
	cat $(BENCH_OUT)/overhead.txt
	$(BIN)/python bench/approval_latency.py --json $(BENCH_OUT)/approval_latency.json $(BENCH_APPROVAL_ARGS) \
		> $(BENCH_OUT)/approval_latency.txt
	cat $(BENCH_OUT)/approval_latency.txt
	$(BIN)/python bench/catalog_scale.py $(BENCH_CATALOG_ARGS) > $(BENCH_OUT)/catalog_scale.txt
	cat $(BENCH_OUT)/catalog_scale.txt
	$(BIN)/python bench/proxy_floor.py > $(BENCH_OUT)/proxy_floor.txt
	cat $(BENCH_OUT)/proxy_floor.txt
	$(BIN)/python bench/chart.py $(BENCH_OUT)/overhead.json $(BENCH_OUT)/approval_latency.json \
		--out $(BENCH_OUT)/chart.svg

clean:
	rm -rf $(VENV) node_modules .hub-data .pytest_cache .ruff_cache bench-results
