# Two entry points for a fresh machine: `make serve` runs the hub, `make test` runs every check.
# Both create .venv and node_modules/ by themselves (PyPI and the npm registry).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CONFIG ?= config.toml

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
	$(BIN)/mcp-hub migrate --config $(CONFIG)
	$(BIN)/mcp-hub serve --config $(CONFIG)

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/pyright

test: $(PY_STAMP) $(NODE_STAMP) lint typecheck
	$(BIN)/pytest

bench: $(PY_STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) node_modules .hub-data .pytest_cache .ruff_cache
