# `make run`  — create .venv, install learnlab, reproduce the flagship study (hard-negatives, laptop preset).
# `make test` — create .venv if needed and run the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,ray,interop,track]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/learnlab run hard-negatives --seeds 20

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_reference.py hard-negatives --repeats 3
	$(BIN)/python benchmarks/bench_reference.py model-collapse

clean:
	rm -rf $(VENV) runs .pytest_cache
