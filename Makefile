# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/onsite-ballot serve

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations
	$(BIN)/mypy --strict app

unit: $(STAMP)
	$(BIN)/pytest

test: lint unit

# Not part of `make test`: minutes long, and its figures mean something only on a quiet machine.
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.push_latency
	$(BIN)/python -m bench.cold --runs 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
