# l3net: set up, test, demo.  `make demo` is the main job; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of PyTorch by default. GPU users: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=

.PHONY: setup setup-test test test-fast mutants demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install PyTorch first (a local CPU wheel if pip can find one offline, else the CPU index), then l3net.
$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install --no-index --no-deps "$(TORCH)" 2>/dev/null \
	  || $(BIN)/pip install "$(TORCH)" --index-url "$(TORCH_INDEX)" --extra-index-url https://pypi.org/simple
	@touch $@

# Stamps: re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -e .
	@$(BIN)/l3net --version
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -e ".[test,hear,export]"
	@touch $@

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

test: setup-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick subset: everything but the slow end-to-end tests.
test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The mutation check (not part of `make test`): plausible bugs applied one at a time to a copy of
# src/, and the tests that cover each; see tools/mutants.py and docs/TESTING.md. Tens of minutes on 2 cores.
MUTANTS_ARGS ?=
mutants: setup-test
	$(BIN)/python tools/mutants.py $(MUTANTS_ARGS)

demo: setup
	$(BIN)/l3net demo --out l3net-demo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
