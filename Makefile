# Two commands: `make run` (demo on SQLite + a real Celery worker and beat on the filesystem
# transport) and `make test` (the whole suite; PostgreSQL/Redis when DATABASE_URL /
# CELERY_BROKER_URL say so).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTHON_FOR_VENV := $(shell for p in python3.13 python3.12 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then command -v $$p; break; fi; done)

.PHONY: venv run-venv dev-venv run serve test lint typecheck check migrate demo clean bench bench-peer screenshots

# What running needs (`make run`), and on top of it what testing and checking need (`make test`).
$(VENV)/.runtime: pyproject.toml
	@if [ -z "$(PYTHON_FOR_VENV)" ]; then \
		echo "error: Python >= 3.12 is required (tried python3.13, python3.12, python3)." >&2; \
		echo "       Install one, or with pyenv: echo 3.12.1 > .python-version" >&2; exit 1; fi
	$(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run-venv: $(VENV)/.runtime
venv: $(VENV)/.installed
dev-venv: venv

migrate: run-venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0

demo: migrate
	$(PY) manage.py load_demo

run: demo
	@echo ""
	@echo "  Flow Orchestration is starting at http://127.0.0.1:$(PORT)/"
	@echo "  Demo logins (password 'demo' for all): admin, alice (IT), bob (manager),"
	@echo "  carol (facilities), dave (HR), erin (engineering), frank (support), grace (loans), henry (loan committee)."
	@echo "  Emails land in var/outbox/ and on the Outbox page (/dev/outbox/, for admin: it shows everyone's)."
	@echo ""
	$(PY) scripts/run_all.py --port $(PORT)

# The same processes on whatever DATABASE_URL names, without demo data: your own process
# (docs/getting-started.md).
serve: migrate
	@echo ""
	@echo "  Flow Orchestration is starting at http://127.0.0.1:$(PORT)/ (no demo data loaded)"
	@echo ""
	$(PY) scripts/run_all.py --port $(PORT)

test: venv
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) -m pytest -n $${PYTEST_WORKERS:-2} --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: venv
	$(PY) -m mypy .

check: lint typecheck
	$(PY) manage.py makemigrations --check --dry-run

screenshots: venv  ## the browser tests, writing docs/screenshots/
	$(PY) manage.py collectstatic --noinput --verbosity 0
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -n $${PYTEST_WORKERS:-2} --dist loadgroup tests/browser

bench: venv
	$(PY) bench/run.py

bench-peer: venv  ## this engine and Viewflow 2.4 side by side (bench/README.md)
	$(PY) bench/run.py peer

clean:
	rm -rf $(VENV) var staticfiles
