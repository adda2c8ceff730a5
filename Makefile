# Two commands do all the set-up on a fresh machine:
#   make run    builds .venv, then runs configs/default.yaml on the bundled seed pages
#   make test   builds .venv (with the test tools and Debian's chromium), then runs the tests
#   make lint   ruff (lint and format) and mypy, as CI runs them
#   make docs   the docs site into site/ (mkdocs build --strict)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/default.yaml
# Numba's compiled code is cached once per user (every run sets NUMBA_CACHE_DIR to
# ~/.cache/papertopics/numba unless it is set), so a new output folder does not compile again.

.PHONY: setup run test lint docs clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU build of 2.13.0 is the one this machine serves.
	$(PY) -m pip install --quiet torch==2.13.0
	# constraints.txt pins every other package to the versions the measured results were made with,
	# so a fresh clone gets the same topics (pip freeze of a working .venv, torch excluded).
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m pipeline run $(CONFIG)

test: setup
	bash tests/setup_browser.sh
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/ruff format --check pipeline tests bench
	$(VENV)/bin/mypy

docs: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) outputs/*/ outputs/.cache site
