# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   create .venv, install, render a synthetic acquisition, run the workflows
#   make test   create .venv, install, run the tests
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# An editable install leaves serialoct uncompiled, and where PYTHONDONTWRITEBYTECODE is set every
	# process (the runner, Snakemake, the fork server) compiles it again: 0.3 s of CPU per run.
	$(BIN)/python -m compileall -q src/serialoct
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/serialoct demo demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output
