# The README's commands. `make demo` runs the whole pipeline on the bundled data set;
# `make test` runs the fast test suite. Each creates .venv and installs the project when needed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Find a Python >= 3.12: $(PYTHON) if given, else on PATH, else in pyenv's versions folder.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then command -v $$p; exit 0; fi; done; \
	  root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	  for p in $$root/versions/3.12*/bin/python3.12 $$root/versions/3.13*/bin/python3.13; do \
	  if [ -x $$p ]; then echo $$p; exit 0; fi; done)

.PHONY: setup demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no Python >= 3.12 found (looked on PATH and in \$$(pyenv root)/versions/3.12*, 3.13*)." >&2; \
	  echo "       Install one, or run: make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)" >&2; exit 1; fi
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesirt demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/data_load.py

lint: $(STAMP)
	$(BIN)/ruff check bayesirt tests bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache
