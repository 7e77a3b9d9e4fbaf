# The two commands of the README: `make demo` and `make test`. Both do all set-up first.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast test-training lint dashboard
setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/interp info smollm2-135m
	$(BIN)/interp scan smollm2-135m --out runs/demo

test: setup
	@bash scripts/setup_browser.sh
	$(BIN)/python -m pytest -q

# Quick iteration: no test that loads the bundled real models (those are marked real_model).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not real_model and not training"

# Tests that train models from scratch (the planted-mechanism recipes), minutes each.
test-training: setup
	$(BIN)/python -m pytest -q -m training

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

dashboard: setup
	$(BIN)/interp dashboard --model smollm2-135m
