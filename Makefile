# Two entry points: `make demo` and `make test`. Only python3 is needed; everything else
# goes into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench bench-stewardship clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/vtconnect demo

test: $(BIN)/.installed
	$(BIN)/ruff check connectors taxii tests bench packaging
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python bench/core.py
	$(BIN)/python bench/splunk.py
	$(BIN)/python bench/taxii.py
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/stewardship.py

# VirusTotal calls made against the minimum, and privacy leaks (about 3 minutes; --quick: 1)
bench-stewardship: $(BIN)/.installed
	$(BIN)/python bench/stewardship.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
