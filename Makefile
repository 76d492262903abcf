# `make dev` and `make test` create the virtual environment on first use.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
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
