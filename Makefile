# Every target sets up what it needs: a fresh clone only needs python3 (3.10+), java (17+) and npm.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# One copy of the emulator serves make, the tests and `model-runner-db local start`/`demo` (the same default as
# model_runner.testing.emulator.default_emulator_dir): set DYNAMODB_LOCAL_DIR to keep it elsewhere.
export DYNAMODB_LOCAL_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/model-runner-db/dynamodb-local
DDB_JAR := $(DYNAMODB_LOCAL_DIR)/DynamoDBLocal.jar
PYTEST_ARGS ?=
# Test processes: one per CPU (pytest-xdist); each starts its own in-memory DynamoDB Local. TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= auto
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)
# Scale of the long reliability run (`make reliability`); `make test` runs the reliability suite at scale 1.
RELIABILITY_SCALE ?= 10

.PHONY: install dynamodb-local test test-memory unit integration reliability lint docs demo bench screenshots clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

# DynamoDB Local (the official AWS emulator) ships in the npm package amplify-dynamodb-simulator.
dynamodb-local: $(DDB_JAR)

$(DDB_JAR): | $(VENV)/.installed
	$(PY) -m model_runner.testing.dynamodb_local fetch --dest $(DYNAMODB_LOCAL_DIR)

# Two phases: everything but the page tests in parallel, then the page tests (marked `browser` by tests/conftest.py)
# in one process, so that the headless Chromium never runs beside the xdist workers: the whole run stays under 2 GB
# (`make test-memory` measures it). Both must pass; a phase that selects nothing (exit status 5) fails, unless
# PYTEST_ARGS narrows the run.
define pytest_phases
	$(PY) -m pytest $(1) $(XDIST) -m "not browser" $(PYTEST_ARGS) $(call allow_empty)
	$(PY) -m pytest $(1) -m browser $(PYTEST_ARGS) $(call allow_empty)
endef
allow_empty = $(if $(strip $(PYTEST_ARGS)),|| [ $$? -eq 5 ])

test: install dynamodb-local
	$(call pytest_phases,tests)

# make test under a sampler of its whole process tree: peak PSS and RSS sums, the largest processes at the peak, and
# the seconds from the last summary line to the exit (docs/benchmarks.md). Fails when the peak PSS is over 1,900 MiB
# (2 GB is 1,907 MiB).
TEST_MEMORY_MAX_MIB ?= 1900
test-memory: install dynamodb-local
	$(PY) -m benchmarks.suite_memory --max-pss-mib $(TEST_MEMORY_MAX_MIB) -- $(MAKE) --no-print-directory test

unit: install
	$(PY) -m pytest tests/unit $(XDIST) $(PYTEST_ARGS)

integration: install dynamodb-local
	$(call pytest_phases,tests/integration)

# The reliability suite at a larger scale (more jobs, regions, tiles, workers and hypothesis examples): long.
reliability: install dynamodb-local
	$(PY) -m pytest tests/reliability $(XDIST) --reliability-scale $(RELIABILITY_SCALE) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check model_runner tests benchmarks
	$(VENV)/bin/ruff format --check model_runner tests benchmarks
	$(VENV)/bin/mypy

docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

demo: install dynamodb-local
	@echo "To watch a demo job live in the browser instead (docs/monitor.md):"
	@echo "  $(VENV)/bin/model-runner-db local start --in-memory"
	@echo "  $(VENV)/bin/model-runner-db --endpoint-url http://127.0.0.1:8000 serve    # then open http://127.0.0.1:8765/"
	@echo "  $(VENV)/bin/model-runner-db --endpoint-url http://127.0.0.1:8000 demo --workers 2 --failure-rate 0.1    # in another terminal"
	$(PY) -m model_runner.database demo $(DEMO_ARGS)

# The screenshot of the monitor's job page in docs/ (the demo job in the system's headless Chromium).
screenshots: install dynamodb-local
	$(PY) -m model_runner.testing.screenshots --output docs/monitor-job.png

bench: install dynamodb-local
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cache docs/_build docs/autoapi benchmarks/results .pytest_cache .mypy_cache .ruff_cache
