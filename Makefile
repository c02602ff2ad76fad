# Two commands on a fresh machine; each creates the environment on first use.
#   make probe   the main job: a probe of the embedded default (the seed's NEW config) on ARC-AGI-1
#   make test    the test suite, in parallel (pytest-xdist, one worker per core)
#   make test-fast  the tests not marked slow, for while you work
# The pinned CPU build of torch is installed first, so the project's range installs nothing more.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: probe test test-fast lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -e '.[test,ray,lightning,tensorboard]'
	touch $(STAMP)

# A verdict (exit 0 good, 1 bad, 3 inconclusive) is the job's result, not a failure of make; bad input (2)
# and Ctrl-C (130) still fail.
probe: $(STAMP)
	@$(VENV)/bin/collapse-doctor probe $(ARGS); code=$$?; echo "collapse-doctor probe exited $$code (0 good, 1 bad, 3 inconclusive)"; [ $$code -ne 2 ] && [ $$code -lt 128 ]

# One worker per core; --dist loadfile keeps a test file on one worker, so its module fixtures (a
# calibrated fixture history, a probed pair) are built once. Workers share one probe cache (conftest.py).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder $(ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not slow" $(ARGS)

# The formatter and linter (ruff, configured in pyproject.toml); .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check collapse_doctor tests bench fixtures
	$(VENV)/bin/ruff format --check collapse_doctor tests bench fixtures
