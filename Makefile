# Two entry points: `make demo` and `make test`. Only python3 is needed; everything else
# goes into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test fuzz lint bench clean

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

# A longer fuzz campaign than `make test` runs (FUZZ_EXAMPLES per API and mode; raw requests x5).
FUZZ_EXAMPLES ?= 1000
fuzz: $(BIN)/.installed
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz -q

bench: $(BIN)/.installed
	$(BIN)/python bench/core.py
	$(BIN)/python bench/splunk.py
	$(BIN)/python bench/taxii.py
	$(BIN)/python bench/webhook.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
