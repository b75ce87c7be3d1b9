# One entry point each: run, test, check, bench. CI calls `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test check bench docs screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/eventstitch serve

NODE_SDKS := tests/sdk/node/node_modules/.installed

# The Node analytics SDKs the SDK tests drive; without node the tests skip (fail under CI=true).
$(NODE_SDKS): tests/sdk/node/package.json tests/sdk/node/package-lock.json
	@if command -v npm >/dev/null; then \
		cd tests/sdk/node && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	elif [ "$$CI" = "true" ]; then echo "npm is missing: the Node SDK tests cannot run" >&2; exit 1; \
	else echo "npm is missing: the Node SDK tests will skip" >&2; fi

# The suite runs on every core (pytest-xdist): most of its time is spent waiting on servers,
# fsync and PostgreSQL, so two processes on two cores take about 30 % less time than one.
test: $(STAMP_DEV) $(NODE_SDKS)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

check: $(STAMP_DEV)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/no_import_cycles.py

bench: $(STAMP_DEV)
	$(BIN)/python bench/collect_throughput.py
	$(BIN)/python bench/collect_rules_ratio.py
	$(BIN)/python bench/insights_query.py
	$(BIN)/python bench/sdk_batch_throughput.py

docs: $(STAMP_RUN)
	$(BIN)/eventstitch config docs > docs/configuration.md

# A PNG of each console page from a seeded store, into docs/screens/ (needs /usr/bin/chromium).
screenshots: $(STAMP_DEV)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
