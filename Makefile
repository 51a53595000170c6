# One command for the main job, one for the tests; each sets itself up on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed
SITE := site

.PHONY: demo test install docs clean

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

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(SITE)
	@echo "documentation written to $(SITE)/ (open $(SITE)/index.html)"

clean:
	rm -rf $(VENV) runs $(SITE)
