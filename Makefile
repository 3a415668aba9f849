# orgbilling — two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG := scripts/pg.sh
DEV_PG_DIR := .pg/dev
DEV_PG_PORT ?= 54329
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= orgbilling.settings.dev

.PHONY: help venv db db-stop run test lint format bench migrate

help:
	@echo "make run    set up everything and serve http://$(HOST):$(PORT)"
	@echo "make test   set up everything and run the suite on a throwaway PostgreSQL"
	@echo "make lint   ruff + mypy"
	@echo "make bench  deduction benchmark (benchmarks/deductions.py)"
	@echo "make db-stop  stop the local dev PostgreSQL"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

# The dev database: DATABASE_URL when set, else a project-local cluster under .pg/ (git-ignored).
define dev_database_url
$$(if [ -n "$$DATABASE_URL" ]; then echo "$$DATABASE_URL"; else $(PG) start $(DEV_PG_DIR) $(DEV_PG_PORT); fi)
endef

db:
	@echo "DATABASE_URL=$(call dev_database_url)"

db-stop:
	$(PG) stop $(DEV_PG_DIR)

run: venv
	@set -e; export DATABASE_URL="$(call dev_database_url)"; \
	echo "Database: $$DATABASE_URL"; \
	$(PY) manage.py migrate --noinput; \
	$(PY) manage.py seed_demo; \
	$(PY) manage.py ensure_dev_admin; \
	echo "Serving (ASGI, uvicorn) on http://$(HOST):$(PORT)  (admin: /admin/, API docs: /api/docs/, health: /healthz)"; \
	exec $(VENV)/bin/uvicorn orgbilling.asgi:application --host $(HOST) --port $(PORT) \
		--reload --reload-dir orgbilling --reload-dir billing --reload-dir organizations --reload-dir templates

# A throwaway cluster for the whole run, removed afterwards whatever the outcome.
test: venv
	@set -e; dir=$$(mktemp -d /tmp/orgbilling-test.XXXXXX); \
	trap '$(PG) destroy '"$$dir"' >/dev/null 2>&1 || true' EXIT; \
	port=$$($(PY) scripts/free_port.py); \
	export DATABASE_URL=$$($(PG) start $$dir $$port -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off); \
	export DJANGO_SETTINGS_MODULE=orgbilling.settings.test; \
	$(PY) manage.py makemigrations --check --dry-run >/dev/null || { echo "Missing migrations: run manage.py makemigrations"; exit 1; }; \
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=postgres://unused/unused $(VENV)/bin/mypy .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The benchmark gets its own throwaway cluster with production-like durability settings.
bench: venv
	@set -e; dir=$$(mktemp -d /tmp/orgbilling-bench.XXXXXX); \
	trap '$(PG) destroy '"$$dir"' >/dev/null 2>&1 || true' EXIT; \
	port=$$($(PY) scripts/free_port.py); \
	export DATABASE_URL=$$($(PG) start $$dir $$port -c max_connections=200); \
	export DJANGO_SETTINGS_MODULE=orgbilling.settings.dev; \
	$(PY) manage.py migrate --noinput >/dev/null; \
	$(PY) benchmarks/deductions.py $(BENCH_ARGS)
