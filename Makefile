# The two commands of the README: `make dev` (the whole local stack) and `make test` (everything CI runs).
PYTHON ?= python3
VENV := .venv
EMU_VENV := .venv-emulator
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EMU_STAMP := $(EMU_VENV)/.installed

.PHONY: dev test lint typecheck unit fault-run bench bench-dashboard install clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(EMU_STAMP): requirements-emulator.txt
	$(PYTHON) -m venv $(EMU_VENV)
	$(EMU_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-emulator.txt
	touch $@

install: $(STAMP) $(EMU_STAMP)

dev: install
	$(PY) -m dev.stack

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy common functions main.py dev tests

test: install browser lint typecheck
	$(PY) -m pytest

fault-run: install
	$(PY) -m dev.fault_run

bench: install
	$(PY) -m dev.bench

bench-dashboard: install
	$(PY) -m dev.bench_dashboard

clean:
	rm -rf $(VENV) $(EMU_VENV) .local

# The dashboard's browser test (tests/e2e/test_dashboard_page.py) drives Debian's Chromium through
# Playwright's Python package with executable_path: no browser download, only the distribution's
# package, installed here when missing (root, or sudo; about 3-4 minutes on a fresh machine).
.PHONY: browser
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version
