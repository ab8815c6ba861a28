# Task Manager API: `make run` serves it, `make test` tests it. Both set everything up first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PostgreSQL that `make test-postgres` (and `make test`, when reachable) uses.
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: help install dev run migrate test test-sqlite test-postgres lint format typecheck \
        lock audit ci clean stack stack-down bench bench-quick bench-sqlite-writes bench-servers bench-web reliability mutation mutation-report \
        web web-client

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11+ is required ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(RUNTIME_STAMP) ## Create .venv and install the locked runtime dependencies

dev: $(DEV_STAMP) ## Install the development tools too

migrate: $(RUNTIME_STAMP) ## Apply database migrations (DATABASE_URL, default SQLite file)
	$(BIN)/task-manager migrate

# HOST, PORT and every other setting come from the environment or .env (default
# 127.0.0.1:8000); `make run PORT=8080` works too, as make passes them to the command.
run: migrate ## Set up, migrate and serve on http://127.0.0.1:8000 (docs at /docs)
	@scripts/build-web
	$(if $(HOST),HOST=$(HOST)) $(if $(PORT),PORT=$(PORT)) $(BIN)/task-manager serve

# The web app (web/): npm ci + vite build, only when missing or older than its sources.
# Without Node.js `make run` says so and serves the API alone; `make web` fails.
web: ## Build the web app into web/dist (when missing or older than its sources)
	@scripts/build-web --required

web-client: $(DEV_STAMP) ## Regenerate the web app's typed API client from the app's schema
	@BIN=$(BIN) scripts/web-client

test: $(DEV_STAMP) ## Run the whole suite (SQLite, then PostgreSQL when reachable)
	@BIN=$(BIN) TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) scripts/run-tests

test-sqlite: $(DEV_STAMP) ## Run the suite on SQLite only
	$(BIN)/pytest

test-postgres: $(DEV_STAMP) ## Run the suite on PostgreSQL (TEST_POSTGRES_URL)
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest

lint: $(DEV_STAMP) ## ruff (lint + format check), mypy --strict, the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	@BIN=$(BIN) scripts/web-client --check

# A known vulnerability fails; an unreachable vulnerability service is reported, not failed
# (scripts/audit-dependencies says why).
audit: $(DEV_STAMP) ## pip-audit the locked requirements*.txt against known vulnerabilities
	$(BIN)/python scripts/audit-dependencies

format: $(DEV_STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: $(DEV_STAMP) ## Re-pin requirements*.txt from pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-header --no-emit-index-url --no-emit-find-links -o requirements.txt pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-header --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.txt pyproject.toml

# The production topology natively (no Docker): nginx :8080, 2 API instances x 2 gunicorn
# workers, Celery worker + beat, local PostgreSQL and Redis, an SMTP sink. docs/deployment.md.
stack: $(DEV_STAMP) ## Start nginx + 2 API instances + Celery + an SMTP sink on 127.0.0.1:8080
	@BIN=$(BIN) scripts/stack up

stack-down: ## Stop everything make stack started
	@scripts/stack down

# Load from wrk against the app and a no-database ceiling (bench/run.py, docs/benchmarks.md):
# its own databases (PostgreSQL task_manager_bench*, .bench/bench.db), servers on 127.0.0.1.
bench: $(RUNTIME_STAMP) ## Run the benchmark (~14 min), append the table to docs/benchmarks.md
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(RUNTIME_STAMP) ## A short benchmark: PostgreSQL list/get/me (~2 min)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

# BENCH_BASE=<checkout> compares with other code in the same run (bench/sqlite_writes.py).
bench-sqlite-writes: $(RUNTIME_STAMP) ## SQLite under write load, 1 and 2 workers (~7 min)
	$(BIN)/python bench/sqlite_writes.py $(if $(BENCH_BASE),--base $(BENCH_BASE)) $(BENCH_ARGS)

# gunicorn against granian, each with the ceilings served the same way (bench/servers.py).
# granian is no dependency of ours: it gets a virtualenv of its own in .bench/granian.
GRANIAN_VENV := .bench/granian
$(GRANIAN_VENV)/.installed: requirements.txt bench/requirements-granian.txt
	python3 -m venv $(GRANIAN_VENV)
	$(GRANIAN_VENV)/bin/pip install -q -r requirements.txt -r bench/requirements-granian.txt
	touch $@

bench-servers: $(RUNTIME_STAMP) $(GRANIAN_VENV)/.installed ## gunicorn vs granian, CPU per request (~5 min)
	$(BIN)/python bench/servers.py --granian-python $(GRANIAN_VENV)/bin/python $(BENCH_ARGS)

# The web app's load time (web/e2e/performance.spec.ts, @bench): 1,000 tasks, the list within
# 1 s; figures in web/artifacts/performance.json. Needs Node.js and Chromium, like make test.
bench-web: $(DEV_STAMP) ## The web app: time to show 1,000 tasks (Playwright, ~1 min)
	@scripts/build-web --required
	cd web && WEB_BENCH=1 BIN=$(abspath $(BIN)) npx --no-install playwright test e2e/performance.spec.ts

# Fault drills (reliability/run.py, docs/reliability.md): its own PostgreSQL (55432), Redis
# (56379) and stack (nginx 18080) on 127.0.0.1; never the machine's PostgreSQL or Redis.
# Knobs: SOAK_SECONDS (600), DRILL_USERS (12), DRILL_THINK_SECONDS (0.1), DRILLS (1,...,7).
reliability: $(DEV_STAMP) ## Fault drills under load on a private stack (~16 min, as root)
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) $(BIN)/python reliability/run.py

# mutmut over security, rate limits and the auth/admin/task services (docs/testing.md).
# Resumable: results stay in mutants/, and `make mutation` again tests only what is left.
# Knobs: MUTATION_SECONDS (1800, then it stops), MUTATION_CHILDREN (2), MUTATE (one module),
# RETEST=1 (test the survivors again, after adding tests).
mutation: $(DEV_STAMP) ## Mutation testing, bounded and resumable; prints the score per module
	$(BIN)/python scripts/mutation run --seconds $(or $(MUTATION_SECONDS),1800) \
	  --children $(or $(MUTATION_CHILDREN),2) $(if $(MUTATE),--module $(MUTATE)) \
	  $(if $(RETEST),--retest-survivors)

mutation-report: ## The per-module mutation score from the results kept in mutants/
	@$(BIN)/python scripts/mutation report

ci: ## What CI runs: lint, both databases, coverage floor, migrations round trip
	bash .ci/run

clean: ## Remove caches (keeps .venv and the database)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage htmlcov .hypothesis
