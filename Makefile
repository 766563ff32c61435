# efl_toolkit: two commands do all set-up.
#   make demo   -> creates .venv, installs the package, runs the end-to-end demo on embedded data
#   make test   -> creates .venv, installs the package with dev extras, runs the whole suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PRESET ?= classroom_fast
OUT ?= efl_out

.PHONY: demo test venv install install-dev browser-deps anvil lint format clean bench coverage

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "efl_toolkit needs Python 3.11+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/efl demo --preset $(PRESET) --out $(OUT)

# Headless Chromium for the one real-browser test (Debian package; needs root + apt-get).
# Without it the browser test is skipped with a message, unless EFL_REQUIRE_BROWSER=1.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "note: chromium not found and not root; the browser test will be skipped"; fi

# Anvil, a real EVM node, from npm (it ships the binary) into .tools/anvil, for the EVM ledger
# test. Without npm the test is skipped with a message, unless EFL_REQUIRE_ANVIL=1.
ANVIL_VERSION ?= 1.7.1
anvil:
	@if ls .tools/anvil/node_modules/@foundry-rs/anvil-*/bin/anvil >/dev/null 2>&1; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm install --silent --prefix .tools/anvil @foundry-rs/anvil@$(ANVIL_VERSION); \
	else echo "note: npm not found; the Anvil test will be skipped"; fi

test: install-dev browser-deps anvil
	$(BIN)/ruff check efl_toolkit tests benchmarks data_scripts notebooks
	EFL_PRESET=classroom_fast $(BIN)/python -m pytest -q tests efl_toolkit --doctest-modules

lint: install-dev
	$(BIN)/ruff check efl_toolkit tests benchmarks data_scripts notebooks

format: install-dev
	$(BIN)/ruff format efl_toolkit tests benchmarks data_scripts notebooks

bench: install-dev
	$(BIN)/python benchmarks/run_all.py --quick --out bench.json --markdown docs/benchmarks.md

# Line coverage of the whole suite, MPyC party processes and `efl` subprocesses included
# ([tool.coverage.run] in pyproject.toml); FILES=tests/test_x.py measures a few files only.
# Prints the report and writes htmlcov/index.html.
FILES ?= tests efl_toolkit --doctest-modules
coverage: install-dev
	rm -rf .coverage .coverage.* htmlcov
	COVERAGE_FILE=$(CURDIR)/.coverage EFL_PRESET=classroom_fast \
	  $(BIN)/coverage run -m pytest -q -p no:cacheprovider $(FILES)
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage combine -q
	$(BIN)/coverage report --sort=cover
	$(BIN)/coverage html -q

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache build *.egg-info .coverage .coverage.* htmlcov
