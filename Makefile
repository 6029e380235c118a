# Two entry points do all of their own set-up on a fresh machine:
#   make book   builds the executed Jupyter Book into _build/html
#   make test   runs the unit tests, then the book build (which executes every chapter once)
# Set-up: FluidSynth (apt when root), a virtual environment, requirements.txt (exact pins,
# torch included: the CPU wheel), and the package in editable mode.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test lint clean fluidsynth notebooks

setup: fluidsynth $(STAMP)

fluidsynth:
	@bash .ci/ensure-fluidsynth

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: setup
	$(BIN)/jupyter-book build -W -n --keep-going .

test: setup
	$(BIN)/ruff check timbrelab tests benchmarks
	$(BIN)/pytest -q tests
	$(MAKE) book

lint: setup
	$(BIN)/ruff check timbrelab tests benchmarks

# Colab opens .ipynb files: regenerate the paired notebooks after editing a chapter's .md
# (tests/test_book.py fails when they drift apart).
notebooks: setup
	$(BIN)/jupytext --to ipynb --update book/0*.md

clean:
	rm -rf _build
