# The two commands: `make demo` and `make test`. Both install uv with pip when it is missing.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
DEMO_DIR ?= demo-work

.PHONY: demo test bootstrap sync bench lint

bootstrap:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

sync: bootstrap
	@$(UV) sync --frozen --quiet --compile-bytecode

demo: sync
	$(UV) run --frozen mermaid-train demo --workdir $(DEMO_DIR)

test: sync
	$(UV) run --frozen pytest -q

bench: sync
	$(UV) run --frozen python bench/ingest.py --annotations 20000000

lint: sync
	$(UV) run --frozen ruff check packages tests bench
