# Everyday commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
STAMP := $(VENV)/.installed-stamp
PO := $(wildcard app/translations/*/LC_MESSAGES/messages.po)
MO := $(PO:.po=.mo)

.PHONY: install lock run test test-sqlite test-postgres lint format bench faults translations extract-messages scheduler kiosk-token clean screens

LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

# Everything third-party comes from the hashed locks in requirements/ (see `make lock`); the project
# itself is installed apart, editable, with the setuptools the lock pinned.
$(STAMP): requirements/base.txt requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

%.mo: %.po $(STAMP)
	$(VENV)/bin/pybabel compile -i $< -o $@

install: $(STAMP) $(MO)

# Refresh the locks after editing requirements/*.in (top-level pins); commit the .in and .txt together.
lock: $(STAMP)
	cd requirements && ../$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o base.txt base.in
	cd requirements && ../$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o dev.txt dev.in
	cd requirements && ../$(VENV)/bin/pip-compile $(LOCK_FLAGS) -o bench.txt bench.in

translations: $(MO)

extract-messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o app/translations/messages.pot .
	$(VENV)/bin/pybabel update --no-fuzzy-matching -i app/translations/messages.pot -d app/translations

run: install
	$(FLASK) db upgrade
	$(FLASK) demo-data
	SCHEDULER_ENABLED=$${SCHEDULER_ENABLED:-true} $(FLASK) run --host 127.0.0.1 --port 8000 --with-threads --no-reload

scheduler: install
	$(FLASK) scheduler

# `make kiosk-token CENTRE=amman-muqabalain`: register a kiosk for the centre and print its bearer token.
kiosk-token: install
	@test -n "$(CENTRE)" || { echo "usage: make kiosk-token CENTRE=<centre id>"; exit 2; }
	$(FLASK) kiosk-token $(CENTRE)

# SQLite + embedded Redis always; PostgreSQL + Redis too when TEST_DATABASE_URL / TEST_REDIS_URL are set.
test: install
	@if [ "$$CI" = "true" ] && { [ -z "$$TEST_DATABASE_URL" ] || [ -z "$$TEST_REDIS_URL" ]; }; then \
		echo "CI=true: TEST_DATABASE_URL and TEST_REDIS_URL must name PostgreSQL and Redis (see .ci/run)"; exit 2; fi
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL $(PY) -m pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$TEST_DATABASE_URL) and Redis ($${TEST_REDIS_URL:-embedded}) =="; \
		$(PY) -m pytest $(PYTEST_ARGS); \
	fi

# The README's screenshots of the floor pages (docs/screens/*.png), in Debian's Chromium; not part of `make test`.
screens: install
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL $(PY) -m pytest -q -p tests.conftest -p tests.ticketing.conftest docs/screens/take.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Not part of `make test`. Needs PostgreSQL and Redis on 127.0.0.1 and `wrk` + `pgbench` (apt-get install wrk
# postgresql-client). BENCH_ARGS=--smoke proves the harness in ~2 minutes; see BENCHMARKS.md.
bench: install
	$(PY) -m pip install --quiet --require-hashes -r requirements/bench.txt
	$(PY) -m bench.run $(BENCH_ARGS)

# Not part of `make test` (minutes). Starts its own PostgreSQL (initdb, free port) and Redis (free port), serves
# the app with gunicorn -k gevent (2 workers), runs a booking surge through injected faults; see RELIABILITY.md.
# Needs redis-server, psql and PostgreSQL 15's binaries (PG_BIN, default /usr/lib/postgresql/15/bin).
faults: install
	$(PY) -m bench.faults $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
