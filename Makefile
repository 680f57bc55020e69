# The two commands of the README: `make run` and `make test`. Everything else is a helper.
#
# Both install from the lock files in requirements/ (exact versions, with hashes), never from
# the ranges in pyproject.toml: a new release of a dependency cannot change a fresh install.
# `make run` installs what the service needs (service.txt); `make test` adds the developer tools
# (dev.txt) and axe-core from the npm registry (tests/browser/package-lock.json).
# `make lock` remakes both files from pyproject.toml; see "Dependencies" in the README.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-service
DEV_STAMP := $(VENV)/.installed-dev
AXE := tests/browser/node_modules/axe-core/axe.min.js
PIP := $(BIN)/python -m pip install --quiet --require-hashes --no-deps

.PHONY: run test lint unit fast bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements/service.txt pyproject.toml | $(BIN)/python
	$(PIP) -r requirements/service.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(DEV_STAMP): requirements/dev.txt $(RUN_STAMP)
	$(PIP) -r requirements/dev.txt
	touch $@

$(AXE): tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --silent
	touch $@

run: $(RUN_STAMP)
	$(BIN)/onsite-ballot serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check app tests migrations
	$(BIN)/mypy --strict app

unit: $(DEV_STAMP) $(AXE)
	$(BIN)/pytest

test: lint unit

# The fast lane, for the edit-test loop: everything but the tests marked slow (they start servers,
# drive a browser, crash or load the service). `make test` still runs them all.
fast: $(DEV_STAMP)
	$(BIN)/pytest -m "not slow"

# Not part of `make test`: minutes long, and its figures mean something only on a quiet machine.
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.push_latency
	$(BIN)/python -m bench.cold --runs 3

# Remake the lock files after a change to the dependencies in pyproject.toml, or to take newer
# releases (`make lock UPGRADE=--upgrade`); then run `make test` and commit requirements/.
lock: $(DEV_STAMP)
	$(BIN)/uv pip compile pyproject.toml requirements/build.in $(UPGRADE) --universal --python-version 3.11 \
	  --generate-hashes --no-header --quiet -o requirements/service.txt
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra dev $(UPGRADE) --universal \
	  --python-version 3.11 --generate-hashes --no-header --quiet -c requirements/service.txt -o requirements/dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules
