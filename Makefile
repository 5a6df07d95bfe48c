# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs what running needs; `make test` adds the test toolchain.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck pytest stress busy-suite bench bench-quick system-deps clean vendor screenshots

# The pages' front-end files ship inside the package (server/views/vendor): no Node to run.
run: $(RUN_STAMP)
	$(BIN)/monday-notify serve --dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules/.installed

# Copy the SDK bundle, Vibe's CSS and the Figtree font from node_modules into the package
# (server/views/vendor, committed): the server never reads node_modules at run time.
vendor: node_modules/.installed
	$(PYTHON) scripts/vendor_assets.py

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

# The whole suite three times with every core busy (issue 12): no test may need an idle machine.
busy-suite: $(STAMP) node_modules/.installed system-deps
	bash scripts/busy-suite.sh

# The benchmarks run once in --quick mode so they cannot rot; they print figures, never pass/fail on time.
bench-quick: $(STAMP) system-deps
	source scripts/pg-env.sh && $(BIN)/python -m bench --quick

test: lint typecheck bench-quick pytest

# Test runs write their screenshots under tests/artifacts/ (ignored); this refreshes the README's.
screenshots: $(STAMP) system-deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -p no:cacheprovider \
		tests/browser -k test_screenshots_of_each_view

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules var .mypy_cache .ruff_cache
