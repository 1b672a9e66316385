# Developer entry points. `make demo` runs the exporter against a simulated node; `make test` runs
# every check (lint, types, tests) exactly as CI does.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit e2e bench dashboards clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/inference-throughput-exporter demo

lint: $(STAMP)
	$(BIN)/ruff check exporter tests bench scripts
	$(BIN)/ruff format --check exporter

typecheck: $(STAMP)
	$(BIN)/mypy exporter

test: lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
