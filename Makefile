# Two commands on a fresh machine; each creates the environment on first use.
#   make probe   the main job: a probe of the embedded default (the seed's NEW config) on ARC-AGI-1
#   make test    the test suite
# The pinned CPU build of torch is installed first, so the project's range installs nothing more.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: probe test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -e '.[test,ray,lightning]'
	touch $(STAMP)

probe: $(STAMP)
	$(VENV)/bin/collapse-doctor probe $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)
