# replenish — the commands a newcomer needs. Python >= 3.11 and make, nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PREFECT_PORT ?= 4200
# Test worker processes (pytest-xdist): most tests wait on servers, Prefect or
# subprocesses, so three share two cores well. `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 3

# Offline by default: no analytics, no telemetry.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export GX_ANALYTICS_ENABLED ?= false
# Let Python keep the bytecode of what it imports (__pycache__). A shell that sets
# PYTHONDONTWRITEBYTECODE (this CI machine's does) combined with pip's --no-compile
# below made every process compile every module it imports from source, every
# time: 24 s instead of 7 s to import the nightly flow, in each test worker, CLI
# subprocess and Prefect server the tests start.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo test lint browser unit server worker deploy worker-staging deploy-staging clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# uv installs the same versions as pip (the same resolution of pyproject.toml's
	# ranges, checked) in ~10 s instead of ~2.5 min; pip does it where uv cannot
	# (no wheel of uv for the platform, an index only pip is configured for).
	# Neither compiles bytecode up front: Python compiles the modules it imports on
	# first use and keeps them (see PYTHONDONTWRITEBYTECODE above).
	{ $(BIN)/pip install --quiet --disable-pip-version-check uv && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'; } || \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Write the demo shop (SQLite) and run the nightly plan on it.
demo: install
	$(BIN)/replenish demo

## Lint, type-check and run every test (what CI runs).
test: install lint browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope

## Debian's Chromium for the browser test (tests/browser), installed when
## missing and this is a Debian/Ubuntu machine run as root; otherwise the
## browser test skips (or fails under REPLENISH_REQUIRE_SERVERS=1, as in CI).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "Chromium not found: the browser test will skip (Debian: apt-get install chromium)"; fi; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## A local Prefect server (SQLite) with its UI on http://127.0.0.1:$(PREFECT_PORT).
## (PREFECT_UI_URL: the automations' notifications link to the runs in the UI.)
server: install
	PREFECT_UI_URL=http://127.0.0.1:$(PREFECT_PORT) \
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# The Prefect API the targets below talk to: the local server by default,
# e.g. `make deploy PREFECT_API_URL=https://prefect.example.com/api` for another one.
PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
API := PREFECT_API_URL=$(PREFECT_API_URL)

## The set-up (work pool, blocks, automations; idempotent) and a process worker polling the pool.
worker: install
	$(API) $(BIN)/python -m deployments.setup
	$(API) $(BIN)/prefect worker start --pool replenish-process

## Register the deployments of prefect.yaml (after the set-up).
deploy: install
	$(API) $(BIN)/python -m deployments.setup
	$(API) $(BIN)/prefect --no-prompt deploy --all

## The same for staging: prefect.staging.yaml, work pool replenish-staging.
worker-staging: install
	$(API) $(BIN)/python -m deployments.setup --prefect-file prefect.staging.yaml
	$(API) $(BIN)/prefect worker start --pool replenish-staging

deploy-staging: install
	$(API) $(BIN)/python -m deployments.setup --prefect-file prefect.staging.yaml
	$(API) $(BIN)/prefect --no-prompt deploy --all --prefect-file prefect.staging.yaml

clean:
	rm -rf replenish-data .pytest_cache .mypy_cache .ruff_cache
