# Every target bootstraps .venv from nothing on a machine that has only Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
# The supported Airflow minors, oldest first; each has requirements/constraints-<minor>.txt.
AIRFLOW_VERSIONS := 3.1 3.2 3.3
NEWEST_AIRFLOW := $(lastword $(AIRFLOW_VERSIONS))
# Which Airflow a target installs and runs on: `make test AIRFLOW=3.1`. The newest lives in .venv,
# the others in .venv-<minor>.
AIRFLOW ?= $(NEWEST_AIRFLOW)
ifeq ($(filter $(AIRFLOW),$(AIRFLOW_VERSIONS)),)
$(error AIRFLOW=$(AIRFLOW) is not supported: choose one of $(AIRFLOW_VERSIONS))
endif
VENV := $(if $(filter $(NEWEST_AIRFLOW),$(AIRFLOW)),.venv,.venv-$(AIRFLOW))
CONSTRAINTS := requirements/constraints-$(AIRFLOW).txt
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MATRIX_LOGS := build/test-matrix

.PHONY: venv test test-matrix demo sandbox bench e2e chaos lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml sandbox/pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[examples,dev,e2e]' -e ./sandbox
	@touch $(STAMP)

## make test: install everything and run the whole test suite (on the newest Airflow; AIRFLOW=3.1 ...)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

## make test-matrix: the whole suite on every supported Airflow, one venv each, one after another;
## each version's output also goes to build/test-matrix/<minor>.log, and a summary ends the run.
## MATRIX="3.1 3.2" picks the versions (CI: the newest already ran in make test)
MATRIX ?= $(AIRFLOW_VERSIONS)
ifneq ($(filter-out $(AIRFLOW_VERSIONS),$(MATRIX)),)
$(error MATRIX=$(MATRIX) names an unsupported Airflow: choose from $(AIRFLOW_VERSIONS))
endif
test-matrix:
	@mkdir -p $(MATRIX_LOGS); rm -f $(MATRIX_LOGS)/summary.txt; status=0; \
	for v in $(MATRIX); do \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory venv AIRFLOW=$$v > $(MATRIX_LOGS)/$$v-venv.log 2>&1; then \
			built=$$(date +%s); \
			$(MAKE) --no-print-directory test AIRFLOW=$$v 2>&1 | tee $(MATRIX_LOGS)/$$v.log; \
			rc=$${PIPESTATUS[0]}; \
		else \
			built=$$(date +%s); rc=1; tail -n 30 $(MATRIX_LOGS)/$$v-venv.log; \
			echo "venv build failed" > $(MATRIX_LOGS)/$$v.log; \
		fi; \
		end=$$(date +%s); \
		[ $$rc -eq 0 ] || status=1; \
		printf 'Airflow %s: %s (venv %ss, suite %ss) %s\n' $$v "$$([ $$rc -eq 0 ] && echo passed || echo FAILED)" \
			$$((built - start)) $$((end - built)) "$$(grep -E '[0-9]+ (passed|failed)' $(MATRIX_LOGS)/$$v.log | tail -n 1 | tr -d '=')" \
			>> $(MATRIX_LOGS)/summary.txt; \
	done; \
	echo "--- test matrix"; cat $(MATRIX_LOGS)/summary.txt; exit $$status

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

## make chaos: the deployment of make e2e with workers, the triggerer, the scheduler and d6 failing
chaos: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python e2e/chaos.py $(CHAOS_ARGS)

## make lint: ruff's rules, ruff format and mypy --strict on airflow_provider_d6, as CI runs them
LINT_PATHS := airflow_provider_d6 sandbox dags tests bench e2e scripts
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

clean:
	rm -rf .venv $(foreach v,$(AIRFLOW_VERSIONS),.venv-$(v)) .airflow build *.egg-info .mypy_cache
