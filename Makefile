# ClinicDesk: `make run` starts the app with demo data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PORT ?= 8501
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run venv migrate demo test test-unit test-integration test-pages test-e2e bench chromium-desktop lint format check-migrations chromium postgres clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -r requirements-dev.txt
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null  # on every core, not pip's one
	rm -f $(VENV)/.installed-* && touch $@

migrate: venv
	$(BIN)/python -m core.cli migrate

demo: migrate
	$(BIN)/python -m core.cli seed-demo --if-empty

run: demo
	$(BIN)/streamlit run serve.py --server.port $(PORT)

chromium:
	scripts/ensure-chromium

chromium-desktop:
	scripts/ensure-chromium --desktop

postgres:
	scripts/ensure-postgres-binaries

# One run, tests handed out one by one to two workers: the browser tests' waits (servers
# starting, pages settling, mail arriving) are filled with the others' work. The template
# databases are built in the background as the run starts (tests/support/templates.py); one
# OpenMP thread per worker, as two workers already fill both cores.
test: venv chromium postgres lint check-migrations
	@templates=$$(mktemp -d) && trap 'rm -rf "$$templates"' EXIT && \
	export CLINICDESK_TEST_TEMPLATES=$$templates OMP_NUM_THREADS=1 && \
	{ $(BIN)/python -m tests.support.templates $$templates & } && \
	$(PYTEST) -n 2 --dist load tests

test-unit: venv
	$(PYTEST) tests/unit

test-integration: venv postgres
	$(PYTEST) tests/integration

test-pages: venv
	$(PYTEST) -n 2 tests/pages

test-e2e: venv chromium
	$(PYTEST) -n 2 --dist loadfile tests/e2e

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-migrations: venv
	$(BIN)/python -m db.check_migrations

bench: venv chromium-desktop
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.browser

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
