# One command for the main job, one for the tests; each sets itself up on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
LINT_STAMP := $(VENV)/.lint-installed
SITE := site

.PHONY: demo test install docs lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned CPU build; users on GPUs install their own torch first.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pcnode demo

test: $(STAMP)
	$(PY) -m pytest

# The documentation site, built in strict mode (a broken link, a missing page or an API
# reference to a name that no longer exists fails). Its packages (the `docs` extra) go
# into the same environment; the core install does not need them.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# The gate CI runs besides the tests: ruff (lint, and the format check) and pyright in basic
# mode on the package, configured in pyproject.toml.
$(LINT_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[lint]"
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(VENV)/bin/ruff check pcnode benchmarks tests examples docs/hooks.py
	$(VENV)/bin/ruff format --check pcnode
	$(VENV)/bin/pyright

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(SITE)
	@echo "documentation written to $(SITE)/ (open $(SITE)/index.html)"

clean:
	rm -rf $(VENV) runs $(SITE)
