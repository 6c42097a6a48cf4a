# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else is assumed
# beyond Python 3.10+, git and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

NODE_DEPS := $(VENV)/node/node_modules/jose/package.json

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

# Node's jose, a third-party verifier of the minted tokens (tests/integration/broker/
# test_rfc9068.py); installed once, only where npm exists (the test says so if it is absent).
$(NODE_DEPS):
	if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/node jose@5.10.0; fi

test: lint typecheck $(NODE_DEPS)
	$(BIN)/pytest
	bash tests/action_pythons.sh

bench: $(STAMP)
	PYTHONPATH=tests $(BIN)/python bench/action_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
