# Two entry points: `make demo` and `make test`. Only python3 is needed; everything else
# goes into .venv. The demo installs only what it runs; the tests add their extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || { \
	  echo "vtconnect needs Python 3.9 or newer; $(PYTHON) is older: run make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(BIN)/.installed-runtime: pyproject.toml $(BIN)/python
	$(PIP) -e .
	touch $@

$(BIN)/.installed: pyproject.toml $(BIN)/python
	$(PIP) -e '.[test]'
	touch $(BIN)/.installed-runtime $@

demo: $(BIN)/.installed-runtime
	$(BIN)/vtconnect demo

test: $(BIN)/.installed
	$(BIN)/ruff check connectors taxii tests bench packaging
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python bench/core.py
	$(BIN)/python bench/splunk.py
	$(BIN)/python bench/taxii.py
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
