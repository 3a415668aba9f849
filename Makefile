# orgbilling — two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG := scripts/pg.sh
DEV_PG_DIR := .pg/dev
# Below Linux's ephemeral port range (32768-60999): a client socket can never hold them.
DEV_PG_PORT ?= 25432
# Fits the dev connection budget (README, "Connection budget"): one web process's pool (20),
# the Celery worker's 2 children and the operators' reserve, with room to spare.
DEV_PG_MAX_CONNECTIONS ?= 100
REDIS := scripts/redis.sh
# Local dev state lives under .pg/ (git-ignored), beat's schedule file included. The dev Redis
# lives in a directory of its own under /var/tmp, one per checkout, which the `redis` user can
# reach without any host permission being changed (scripts/redis.sh).
DEV_REDIS_DIR := /var/tmp/orgbilling-redis-$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-12)
DEV_REDIS_PORT ?= 26379
# `make run` serves a fake LLM upstream here when LLM_UPSTREAM_BASE_URL is unset (dev only).
DEV_UPSTREAM_PORT ?= 28100
# Extra flags for the dev fake upstream, e.g. usage details: --prefix-tokens 1000 --cached-tokens 800
DEV_UPSTREAM_ARGS ?=
CELERY := $(VENV)/bin/celery
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= orgbilling.settings.dev
# pytest-xdist processes for `make test` (tests/parallel.py says how they share the machine);
# `make test PYTEST_ARGS=-n0` (or PYTEST_WORKERS=0) runs the suite in one process.
PYTEST_WORKERS ?= 2

.PHONY: help venv db db-stop redis-stop run test lint format bench migrate loadtest loadtest-venv

help:
	@echo "make run    set up everything and serve http://$(HOST):$(PORT)"
	@echo "make test   set up everything and run the suite on a throwaway PostgreSQL"
	@echo "make lint   ruff + mypy"
	@echo "make bench  deduction benchmark (benchmarks/deductions.py)"
	@echo "make loadtest  Locust against a running \`make run\` (USERS=200 DURATION=150s LOADTEST_HOST=...)"
	@echo "make db-stop  stop the local dev PostgreSQL"
	@echo "make redis-stop  stop the local dev Redis (make run stops it on exit)"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

# Locust lives in a virtualenv of its own: its pins (gevent, Flask...) must not meet the app's.
LOAD_VENV := .venv-load
$(LOAD_VENV)/.installed: requirements-loadtest.txt
	@test -x $(LOAD_VENV)/bin/python || $(PYTHON) -m venv $(LOAD_VENV)
	$(LOAD_VENV)/bin/python -m pip install -q -r requirements-loadtest.txt
	@touch $@

loadtest-venv: $(LOAD_VENV)/.installed

# The dev database: DATABASE_URL when set, else a project-local cluster under .pg/ (git-ignored).
define dev_database_url
$$(if [ -n "$$DATABASE_URL" ]; then echo "$$DATABASE_URL"; else $(PG) start $(DEV_PG_DIR) $(DEV_PG_PORT) -c max_connections=$(DEV_PG_MAX_CONNECTIONS); fi)
endef

db:
	@set -e; url="$(call dev_database_url)"; test -n "$$url"; echo "DATABASE_URL=$$url"

db-stop:
	$(PG) stop $(DEV_PG_DIR)

redis-stop:
	$(REDIS) stop $(DEV_REDIS_DIR)

# Celery: with Redis available (CELERY_BROKER_URL set, or redis-server installed, then started
# here on loopback) a worker and beat run beside the web server and stop with it; otherwise
# tasks run eagerly in-process and nothing periodic runs. Either way it says which.
run: venv
	@set -e; DATABASE_URL="$(call dev_database_url)"; test -n "$$DATABASE_URL"; export DATABASE_URL; \
	echo "Database: $$DATABASE_URL"; \
	write_env() { \
		( umask 077; { echo "# Written by make run for manage.py commands in another terminal; rewritten on each run."; \
		  echo "DATABASE_URL=$$DATABASE_URL"; \
		  if [ -n "$$1" ]; then echo "CELERY_BROKER_URL=$$CELERY_BROKER_URL"; echo "CACHE_URL=$$CACHE_URL"; fi; } > .env ); \
	}; \
	write_env; \
	$(PY) manage.py migrate --noinput; \
	$(PY) manage.py ensure_dev_admin; \
	$(PY) manage.py seed_demo --member admin; \
	celery_pids=""; started_redis=""; server_pid=""; upstream_pid=""; \
	cleanup() { \
		trap '' INT TERM HUP; \
		if [ -n "$$server_pid" ]; then kill $$server_pid 2>/dev/null || true; wait $$server_pid 2>/dev/null || true; fi; \
		if [ -n "$$upstream_pid" ]; then kill $$upstream_pid 2>/dev/null || true; wait $$upstream_pid 2>/dev/null || true; fi; \
		if [ -n "$$celery_pids" ]; then kill $$celery_pids 2>/dev/null || true; wait $$celery_pids 2>/dev/null || true; \
			echo "Stopped the Celery worker and beat."; fi; \
		if [ -n "$$started_redis" ]; then $(REDIS) stop $(DEV_REDIS_DIR); echo "Stopped Redis."; write_env; fi; \
	}; \
	trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM HUP; \
	if [ -z "$$CELERY_BROKER_URL" ] && command -v redis-server >/dev/null 2>&1; then \
		CELERY_BROKER_URL=$$($(REDIS) start $(DEV_REDIS_DIR) $(DEV_REDIS_PORT)); started_redis=1; \
		test -n "$$CELERY_BROKER_URL"; export CELERY_BROKER_URL; \
		CACHE_URL=$${CACHE_URL:-$${CELERY_BROKER_URL%/0}/1}; export CACHE_URL; \
		echo "Cache (rate limits, quotas): Redis database 1 of the same server"; \
		write_env redis; \
	fi; \
	if [ -n "$$CELERY_BROKER_URL" ]; then \
		ORGBILLING_PROCESS=worker $(CELERY) -A orgbilling worker -l info --concurrency $${CELERY_WORKER_CONCURRENCY:-2} & celery_pids="$$!"; \
		ORGBILLING_PROCESS=worker $(CELERY) -A orgbilling beat -l info --schedule .pg/celerybeat-schedule & \
		celery_pids="$$celery_pids $$!"; \
		echo "Celery: a worker and beat on $$(printf '%s' "$$CELERY_BROKER_URL" | sed -E 's#//[^@/]*@#//***@#') run the periodic tasks (their logs are interleaved below)"; \
	else \
		echo "Celery: no Redis (redis-server not installed, CELERY_BROKER_URL unset): tasks run eagerly in-process; periodic tasks do not run (scripts/redis.sh install, or set CELERY_BROKER_URL)"; \
	fi; \
	if [ -z "$$LLM_UPSTREAM_BASE_URL" ]; then \
		mkdir -p .pg; ready=.pg/fake-upstream.ready; rm -f $$ready; \
		$(PY) -m tests.fake_upstream --port $(DEV_UPSTREAM_PORT) $(DEV_UPSTREAM_ARGS) --ready-file $$ready >/dev/null & upstream_pid=$$!; \
		for _ in $$(seq 100); do [ -s $$ready ] || ! kill -0 $$upstream_pid 2>/dev/null && break; sleep 0.05; done; \
		[ -s $$ready ] || { echo "The fake LLM upstream did not start on port $(DEV_UPSTREAM_PORT) (set DEV_UPSTREAM_PORT or LLM_UPSTREAM_BASE_URL)"; exit 1; }; \
		export LLM_UPSTREAM_BASE_URL=$$(cat $$ready); \
		echo "LLM upstream: LLM_UPSTREAM_BASE_URL unset, so the gateway forwards to a fake OpenAI-compatible upstream on $$LLM_UPSTREAM_BASE_URL (tests/fake_upstream.py; dev only)"; \
	else echo "LLM upstream: $$LLM_UPSTREAM_BASE_URL"; fi; \
	echo "Serving (ASGI, uvicorn) on http://$(HOST):$(PORT)  (admin: /admin/, API docs: /api/docs/, health: /healthz)"; \
	ORGBILLING_PROCESS=web $(VENV)/bin/uvicorn orgbilling.asgi:application --host $(HOST) --port $(PORT) \
		--reload --reload-dir orgbilling --reload-dir billing --reload-dir organizations --reload-dir templates & \
	server_pid=$$!; wait $$server_pid   # in the background, so Ctrl-C / TERM / HUP reach the cleanup at once

# A throwaway cluster for the whole run, removed afterwards whatever the outcome. The load
# test's smoke test (tests/loadtest/test_run.py) runs Locust from .venv-load; the portal's
# browser tests drive Debian's chromium (scripts/chromium.sh installs it when missing, as root).
test: venv loadtest-venv
	@scripts/chromium.sh install
	@set -e; dir=$$(mktemp -d /tmp/orgbilling-test.XXXXXX); \
	trap '$(PG) destroy '"$$dir"' >/dev/null 2>&1 || true' EXIT; \
	port=$$($(PY) scripts/free_port.py); \
	DATABASE_URL=$$($(PG) start $$dir $$port -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off); \
	test -n "$$DATABASE_URL"; export DATABASE_URL; \
	export ORGBILLING_TEST_PG_DIR=$$dir; \
	export DJANGO_SETTINGS_MODULE=orgbilling.settings.test ORGBILLING_IGNORE_DOTENV=1; \
	$(PY) manage.py makemigrations --check --dry-run >/dev/null || { echo "Missing migrations: run manage.py makemigrations"; exit 1; }; \
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist load $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=postgres://unused/unused $(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-cache

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The benchmark gets its own throwaway cluster with production-like durability settings.
bench: venv
	@set -e; dir=$$(mktemp -d /tmp/orgbilling-bench.XXXXXX); \
	trap '$(PG) destroy '"$$dir"' >/dev/null 2>&1 || true' EXIT; \
	port=$$($(PY) scripts/free_port.py); \
	DATABASE_URL=$$($(PG) start $$dir $$port -c max_connections=200); \
	test -n "$$DATABASE_URL"; export DATABASE_URL; \
	export DJANGO_SETTINGS_MODULE=orgbilling.settings.dev; \
	$(PY) manage.py migrate --noinput >/dev/null; \
	$(PY) benchmarks/deductions.py $(BENCH_ARGS)

# Load test against a server already running (`make run` in another terminal), on the database
# it uses: prepare the people and keys, run Locust, reconcile, report. See README "Load test".
LOADTEST_HOST ?= http://127.0.0.1:$(PORT)
USERS ?= 200
DURATION ?= 150s
loadtest: venv loadtest-venv
	@set -e; DATABASE_URL="$(call dev_database_url)"; test -n "$$DATABASE_URL"; export DATABASE_URL; \
	$(PY) -m loadtest.run --host "$(LOADTEST_HOST)" --users "$(USERS)" --duration "$(DURATION)" \
		$(if $(SPAWN_RATE),--spawn-rate "$(SPAWN_RATE)") $(LOADTEST_ARGS)
