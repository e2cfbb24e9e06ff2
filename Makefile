# Two commands for a fresh machine:
#   make run   - the embedded default (SQLite, in-process limiter, eager tasks)
#   make test  - the whole suite on real PostgreSQL and Redis
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/saas
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test install install-dev lint clean vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Front-end assets come from the npm registry (package-lock.json pins them) and
# are copied into static/vendor/, never served from a CDN nor kept in git. The
# stamp is the copied file: only a changed package-lock.json rebuilds it.
VENDOR_JS := static/vendor/chart.umd.min.js

$(VENDOR_JS): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
	mkdir -p $(@D)
	cp node_modules/chart.js/dist/chart.umd.min.js $@

vendor: $(VENDOR_JS)

# The embedded default is a developer's machine: DEBUG on (a fixed development
# key, plain HTTP). Settings refuse to start with DEBUG off and no secrets.
run: export DEBUG ?= true
run: install vendor
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py sync_tiers
	@$(BIN)/python manage.py next_steps --port $(PORT)
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# The browser tests (tests/web/test_browser.py) drive Debian's chromium through
# Playwright: installed from apt when missing, never a browser Playwright downloads.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# tests/saas/test_pgbouncer.py runs the app through Debian's pgbouncer in
# transaction mode (the test starts its own; the package's service stays off).
PGBOUNCER := /usr/sbin/pgbouncer

$(PGBOUNCER):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
	-$(SUDO) systemctl disable --now pgbouncer >/dev/null 2>&1

# lint-imports first: a broken layer contract fails fast, before the suite.
test: install-dev vendor $(CHROMIUM) $(PGBOUNCER)
	$(BIN)/lint-imports --no-cache
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(BIN)/pytest $(PYTEST_ARGS)

# Schemathesis against the app served on 127.0.0.1 (api/management/commands/api_check.py):
# a key made for the run (revoked after), every built-in check (schemathesis.toml),
# at most 50 examples per operation and phase and 2 minutes. Embedded default as
# `make run`; export DATABASE_URL/REDIS_URL to check on PostgreSQL and Redis.
.PHONY: api-check
api-check: export DEBUG ?= true
api-check: install-dev
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py api_check

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles node_modules static/vendor

# Benchmarks, one command each (benchmarks/*.py). They need PostgreSQL and Redis
# on 127.0.0.1 and FLUSH Redis database 10 (override: BENCH_REDIS_URL);
# bench-http drives the load with Debian's wrk, installed from apt when missing
# (benchmarks/http_load.py falls back to a Python load generator without it).
.PHONY: install-bench bench-limiter bench-http bench-instructions bench-webhook bench-keys bench-flush bench-flush-cluster bench-cluster chaos
WRK := /usr/bin/wrk
VALGRIND := /usr/bin/valgrind

$(WRK):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

$(VALGRIND):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null

$(VENV)/.installed-bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

install-bench: $(VENV)/.installed-bench

bench-limiter: install-bench
	$(BIN)/python benchmarks/limiter.py

bench-http: install-bench $(WRK)
	$(BIN)/python benchmarks/http_load.py

# The in-process cases of bench-http counted in instructions (valgrind): the
# same figures run after run, for changes too small for the timings' noise.
bench-instructions: install-bench $(VALGRIND)
	$(BIN)/python benchmarks/http_load.py --instructions

bench-webhook: install-bench
	$(BIN)/python benchmarks/webhook.py

# Rejections/s of malformed and of unknown (well-formed) keys beside valid-key requests/s.
bench-keys: install-bench $(WRK)
	$(BIN)/python benchmarks/key_rejection.py

# One usage flush of 100,000 customers with pending usage (benchmarks/flush.py):
# customers/s moved and the seconds it took. About 1 minute with the set-up.
bench-flush: install-bench
	$(BIN)/python benchmarks/flush.py

# The same flush on a local Redis Cluster of 3 masters it starts and stops.
bench-flush-cluster: install-bench
	BENCH_FLUSH_CLUSTER=1 $(BIN)/python benchmarks/flush.py

# A local Redis Cluster (3 masters + 3 replicas) and 3 gunicorn nodes
# (benchmarks/cluster.py): exactness across nodes, a master killed mid-load,
# the flush against the 200s served; one table. About 30 s.
bench-cluster: install-bench
	$(BIN)/python benchmarks/cluster.py

# Each dependency fault under load (benchmarks/chaos.py): its own redis-server,
# a TCP proxy in front of PostgreSQL, gunicorn; one table. About 2 minutes.
chaos: install-dev
	$(BIN)/python benchmarks/chaos.py
