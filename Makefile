# replenish — the commands a newcomer needs. Python >= 3.11 and make, nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PREFECT_PORT ?= 4200

# Offline by default: no analytics, no telemetry.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export GX_ANALYTICS_ENABLED ?= false

.PHONY: install demo test lint unit server worker deploy clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Write the demo shop (SQLite) and run the nightly plan on it.
demo: install
	$(BIN)/replenish demo

## Lint, type-check and run every test (what CI runs).
test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## A local Prefect server (SQLite) with its UI on http://127.0.0.1:$(PREFECT_PORT).
server: install
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

## The work pool (idempotent) and a process worker polling it.
worker: install
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/python -m deployments.setup
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect worker start --pool replenish-process

## Register the deployments of prefect.yaml on the local server.
deploy: install
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/python -m deployments.setup
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect --no-prompt deploy --all

clean:
	rm -rf replenish-data .pytest_cache .mypy_cache .ruff_cache
