# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest stress bench bench-quick system-deps clean

run: $(STAMP) node_modules/.installed
	$(BIN)/monday-notify serve --dev

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules/.installed

# PostgreSQL and Chromium from Debian's packages (never a downloaded browser).
system-deps:
	bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check server tests bench
	$(BIN)/ruff format --check server tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict server

# pytest's exit code 5 ("no tests collected") must fail the build, so it is not special-cased.
pytest: $(STAMP) node_modules/.installed system-deps
	source scripts/pg-env.sh && $(BIN)/pytest -q -p no:cacheprovider

# Long contention runs (tests marked `stress`, left out of `make pytest`): e.g. issue 10's
# 50 rounds of concurrent Idempotency-Key duplicates on SQLite and PostgreSQL.
stress: $(STAMP) system-deps
	source scripts/pg-env.sh && $(BIN)/pytest -q -p no:cacheprovider -m stress

# The benchmarks run once in --quick mode so they cannot rot; they print figures, never pass/fail on time.
bench-quick: $(STAMP) system-deps
	source scripts/pg-env.sh && $(BIN)/python -m bench --quick

test: lint typecheck bench-quick pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules var .mypy_cache .ruff_cache
