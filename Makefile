# Two entry points do all of their own set-up on a fresh machine:
#   make book   builds the executed Jupyter Book into _build/html
#   make test   runs the unit tests, the book build (which executes every chapter once), then
#               checks every built page in headless Chromium
# Set-up: FluidSynth and Chromium (apt when root), a virtual environment, requirements.txt
# (exact pins, torch included: the CPU wheel), and the package in editable mode.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test lint clean fluidsynth browser notebooks lab

setup: fluidsynth browser $(STAMP)

fluidsynth:
	@bash .ci/ensure-fluidsynth

browser:
	@bash .ci/ensure-browser

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# --all: every chapter re-executes at every build (Sphinx would skip unchanged sources and keep
# pages executed with older package code).
book: setup
	$(BIN)/jupyter-book build --all -W -n --keep-going .

# Unit tests, then the book build, then every built page checked in headless Chromium.
test: setup
	$(BIN)/ruff check timbrelab tests benchmarks
	$(BIN)/pytest -q tests --ignore=tests/test_built_book.py
	$(MAKE) book
	$(BIN)/pytest -q tests/test_built_book.py

# JupyterLab on the chapters (book/NN_name.ipynb; `make notebooks` refreshes them).
lab: setup
	$(BIN)/jupyter lab book/

lint: setup
	$(BIN)/ruff check timbrelab tests benchmarks

# Colab opens .ipynb files: regenerate the paired notebooks after editing a chapter's .md
# (tests/test_book.py fails when they drift apart).
notebooks: setup
	$(BIN)/jupytext --to ipynb --update book/0*.md

clean:
	rm -rf _build
