# Two entry points: `make demo` and `make test`. Only python3 is needed; everything else
# goes into .venv. The demo installs only what it runs; the tests add their extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# PYTHONWARNINGS: setuptools' editable-install banner is advice for packagers, not for users.
PIP    := PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test test-long fuzz lint bench bench-stewardship clean browser

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

# The status page test drives Debian's chromium (never a downloaded browser); as root on Debian
# it is installed here, elsewhere that test says why it skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	   { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }) \
	  || echo "chromium not installed: the status page browser test will skip"; }

test: $(BIN)/.installed browser
	$(BIN)/ruff check connectors taxii tests bench packaging
	$(BIN)/python -m pytest -q

# The suite plus the runs that need real minutes (VirusTotal's 60 s window: several hosts sharing
# the public tier's budget across two windows); `make test` skips those and says why.
test-long: $(BIN)/.installed browser
	VTCONNECT_TEST_LONG=1 $(BIN)/python -m pytest -q

# A longer fuzz campaign than `make test` runs (FUZZ_EXAMPLES per API and mode; raw requests x5).
FUZZ_EXAMPLES ?= 1000
fuzz: $(BIN)/.installed
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz -q

bench: $(BIN)/.installed
	$(BIN)/python bench/core.py
	$(BIN)/python bench/splunk.py
	$(BIN)/python bench/taxii.py
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/replicas.py
	$(BIN)/python bench/stewardship.py

# VirusTotal calls made against the minimum, and privacy leaks (about 3 minutes; --quick: 1)
bench-stewardship: $(BIN)/.installed
	$(BIN)/python bench/stewardship.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
