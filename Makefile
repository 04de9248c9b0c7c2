# Two commands do all the set-up on a fresh machine:
#   make demo   installs, then opens JupyterLab on the quickstart notebook
#   make test   installs, then runs every check and test, browser tests included
# Both are idempotent: a second run reinstalls only what changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which TensorFlow distribution to install: cpu, gpu (tensorflow[and-cuda]) or
# tensorflow. A machine with an NVIDIA driver gets the GPU build.
TF_EXTRA ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
STAMP := $(VENV)/.ssx-installed
BUNDLE := ssxwidgets/static/widget.js
JS_SOURCES := $(shell find js/src -type f 2>/dev/null) js/build.mjs

.PHONY: demo test install browser lint typecheck js-test pytest clean

demo: install
	$(BIN)/ssx demo

test: install browser lint typecheck js-test pytest

install: $(STAMP) $(BUNDLE)

js/node_modules/.package-lock.json: js/package.json js/package-lock.json
	cd js && npm ci --no-audit --no-fund
	touch $@

$(BUNDLE): js/node_modules/.package-lock.json $(JS_SOURCES)
	cd js && npm run build

$(STAMP): pyproject.toml $(BUNDLE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev,$(TF_EXTRA)]"
	touch $@

# Debian's Chromium when apt can install it; Playwright's own browser otherwise.
browser: $(STAMP)
	@if [ -x /usr/bin/chromium ]; then \
	  echo "chromium: /usr/bin/chromium"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y chromium || \
	  (apt-get update && apt-get install -y chromium); \
	else \
	  $(BIN)/python -m playwright install chromium; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	cd js && npm run typecheck

js-test: js/node_modules/.package-lock.json
	cd js && npm test

pytest: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) js/node_modules ssxwidgets/static build dist
