# The two set-up commands of the README. Both install only what is missing (never a working torch).
PYTHON ?= python3

.PHONY: demo test deps

deps:
	$(PYTHON) .ci/ensure_deps.py

# Runs demo.ipynb headless; the executed notebook and its figures go to outputs/.
demo: deps
	$(PYTHON) .ci/run_notebook.py demo.ipynb outputs/demo.ipynb

test: deps
	$(PYTHON) -m pytest -q tests
