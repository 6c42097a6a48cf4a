# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else is assumed
# beyond Python 3.10+, git and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[broker,postgres,test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	PYTHONPATH=tests $(BIN)/python -m support.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	PYTHONPATH=tests $(BIN)/python bench/action_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
