PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint demo

$(BIN)/hydraplus: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/hydraplus

setup: $(BIN)/hydraplus

test: setup
	$(BIN)/ruff check src tests benchmarks
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests

demo: setup
	$(BIN)/hydraplus demo
