# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv and install what they need; nothing else is assumed
# beyond Python 3.10+, git and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

NODE_DEPS := $(VENV)/node/node_modules/jose/package.json

# What zizmor and actionlint check (docs/development.md, "Supply chain"): our own
# workflows, the example workflows users copy, and both composite actions.
# actionlint reads workflows only (tests/support/lint_actions.py shellchecks the actions'
# run: scripts); zizmor reads all of these and dependabot.yml.
WORKFLOWS := $(sort $(wildcard .github/workflows/*.yml examples/workflows/*.yml))
ACTIONS   := action.yml revoke/action.yml

.PHONY: demo test lint typecheck unit fuzz bench clean

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
	$(BIN)/zizmor --offline --persona=pedantic .github/dependabot.yml $(WORKFLOWS) $(ACTIONS)
	@# actionlint runs shellcheck on every run: script when shellcheck is on PATH. As
	@# root on Debian/Ubuntu (CI) it is installed once; elsewhere the check says it skipped.
	@if ! command -v shellcheck >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing shellcheck with apt-get (for actionlint)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq shellcheck >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null && apt-get install -y -qq shellcheck >/dev/null; } \
	    || echo "apt-get could not install shellcheck"; \
	fi
	$(BIN)/python tests/support/lint_actions.py $(ACTIONS)
	$(BIN)/hadolint deploy/container/Containerfile
	@if command -v shellcheck >/dev/null 2>&1; then \
	  echo "$(BIN)/actionlint $(WORKFLOWS)"; \
	  $(BIN)/actionlint $(WORKFLOWS); \
	else \
	  echo "shellcheck not found: actionlint runs without it, shellcheck checks of run: scripts skipped"; \
	  $(BIN)/actionlint -shellcheck= $(WORKFLOWS); \
	fi

typecheck: $(STAMP)
	$(BIN)/mypy

# The inner loop (docs/development.md, "Tests"): tests/unit on every core (pytest-xdist),
# its temporary files on tmpfs where there is one (SQLite fsyncs every commit; the
# PostgreSQL cluster too), and bytecode cached even where PYTHONDONTWRITEBYTECODE is set
# (every worker compiles every module otherwise). UNIT_TMPDIR= keeps them in TMPDIR.
UNIT_TMPDIR ?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm)
unit: $(STAMP)
	$(if $(UNIT_TMPDIR),TMPDIR=$(UNIT_TMPDIR) )PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n auto --dist worksteal tests/unit

# The property tests (hypothesis) with the long profile: 10,000 examples a test unless
# JOBTOKEN_FUZZ_EXAMPLES says otherwise (tests/conftest.py); `make test` runs them bounded.
PROPERTY_TESTS := $(sort $(wildcard tests/unit/*/test_*properties.py))
fuzz: $(STAMP)
	JOBTOKEN_FUZZ=long $(BIN)/pytest -q -p no:cacheprovider $(PROPERTY_TESTS)

# Node's jose, a third-party verifier of the minted tokens (tests/integration/broker/
# test_rfc9068.py); installed once, only where npm exists (the test says so if it is absent).
$(NODE_DEPS):
	if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/node jose@5.10.0; fi

# The whole suite, one test at a time; the 15 slowest are printed to keep slowness seen.
test: lint typecheck $(NODE_DEPS)
	$(BIN)/pytest --durations=15
	bash tests/action_pythons.sh

bench: $(STAMP)
	PYTHONPATH=tests $(BIN)/python bench/action_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
