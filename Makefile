# `make dev` and `make test` create the virtual environment on first use.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

# The client (./client) first: the server depends on it, and it is on no package index.
$(BIN)/.installed: pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./client
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install dev test migrate
install: $(BIN)/.installed

dev: $(BIN)/.installed
	$(BIN)/agent-sessions dev

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

migrate: $(BIN)/.installed
	$(BIN)/agent-sessions migrate
