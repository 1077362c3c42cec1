# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_TIME ?= 60
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Train on the embedded default (US Census first names from the `names` package, offline) and print new names.
demo: $(BIN)/python
	$(PIP) -e ".[app]"
	$(BIN)/rnnlab train --max-time $(DEMO_TIME) --out runs/names --overwrite
	$(BIN)/rnnlab sample runs/names --num-samples 20

# Install the test extras (torch 2.13.0 CPU for parity tests), lint, and run the suite.
test: $(BIN)/python
	$(PIP) -e ".[test]"
	$(MAKE) lint
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(BIN)/python
	$(PIP) -e ".[test]"
	$(BIN)/python benchmarks/throughput.py --out docs/benchmarks.md

clean:
	rm -rf runs .pytest_cache .ruff_cache
