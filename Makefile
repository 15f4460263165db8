# The two commands of the README: `make dev` (the whole local stack) and `make test` (everything CI runs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck unit fault-run bench bench-dashboard install clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .  # the `planter` command
	touch $@

install: $(STAMP)

dev: install
	$(PY) -m dev.stack

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy common functions main.py dev tests planter_cli

test: install browser lint typecheck
	$(PY) -m pytest

fault-run: install
	$(PY) -m dev.fault_run

bench: install
	$(PY) -m dev.bench

bench-dashboard: install
	$(PY) -m dev.bench_dashboard

clean:
	rm -rf $(VENV) .local

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
