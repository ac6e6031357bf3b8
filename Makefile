# Every target bootstraps .venv from nothing on a machine that has only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo sandbox bench e2e lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml sandbox/pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[examples,dev,e2e]' -e ./sandbox
	@touch $(STAMP)

## make test: install everything and run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

## make demo: start the sandbox and run the example DAGs on it (SQLite, project-local AIRFLOW_HOME)
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## make sandbox: run the d6 sandbox in the foreground
sandbox: $(STAMP)
	$(BIN)/d6-sandbox $(SANDBOX_ARGS)

## make bench: run the benchmarks and write bench/results/latest.json
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## make e2e: production-shape deployment test (PostgreSQL, Celery/Redis, headless Chromium)
e2e: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python e2e/run.py $(E2E_ARGS)

## make lint: ruff's rules, ruff format and mypy --strict on airflow_provider_d6, as CI runs them
LINT_PATHS := airflow_provider_d6 sandbox dags tests bench e2e scripts
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .airflow build *.egg-info .mypy_cache
