# The two commands a new user types: `make demo` and `make test`. Each installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser soak bench dev notebook lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## Run the main job end to end on the embedded default (DuckDB + built-in Graph API simulator).
demo: $(STAMP)
	$(BIN)/leads-pipeline demo

## Run the whole test suite (soaks excluded). Installs Debian's chromium for the console test when it can (root).
## Tests run in parallel processes (one per core, at most 4): much of their time is spent waiting on servers,
## subprocesses and Meta's simulated delays, and each has its own warehouse (a DuckDB file, a PostgreSQL schema).
TEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadgroup
test: $(STAMP) browser
	$(BIN)/python -m pytest -m "not soak" $(TEST_WORKERS) $(PYTEST_ARGS)

## Headless Chromium + ChromeDriver for the console test (skipped where neither exists nor can be installed).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null; \
	  else echo "chromium/chromedriver missing and not root: the browser test will skip"; fi; \
	fi

## Long soaks and fault mixes; prints their figures.
soak: $(STAMP)
	$(BIN)/python -m pytest -m soak -s $(PYTEST_ARGS)

## Benchmarks: prints a JSON report (see docs/performance.md). Installs the peer (dlt) and the profilers first.
bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

## The Dagster UI on http://127.0.0.1:$(PORT) over the demo's warehouse (make dev PORT=3001 for another port).
PORT ?= 3000
dev: $(STAMP)
	$(BIN)/leads-pipeline dev --port $(PORT)

## The notebooks (notebooks/*.ipynb) in JupyterLab on http://127.0.0.1:$(NOTEBOOK_PORT), installed on first use. They
## read the warehouse's read-only snapshot (leads_pipeline.analysts), so they can stay open while the pipeline runs.
NOTEBOOK_PORT ?= 8888
notebook: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,notebook]'
	LEADS_ENV_FILE="$(CURDIR)/.env" $(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
	  --ServerApp.port=$(NOTEBOOK_PORT) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

## Re-resolve and re-pin every transitive dependency into constraints.txt.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv && .lockvenv/bin/pip install --quiet -e '.[dev,bench,notebook]'
	(echo '# Exact versions known to work together (pip install -c constraints.txt). Regenerate with `make lock`.'; \
	 .lockvenv/bin/pip freeze --exclude-editable) > constraints.txt && rm -rf .lockvenv

clean:
	rm -rf $(VENV) data/*.duckdb data/dagster_home
