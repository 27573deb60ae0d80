# ClinicDesk: `make run` starts the app with demo data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS := requirements.txt requirements-dev.txt requirements-tools.txt
STAMP := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | sha1sum | cut -c1-12)
PORT ?= 8501
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run venv migrate demo test system-packages test-unit test-integration test-pages test-e2e bench chromium-desktop lint format check-migrations chromium postgres clean

venv: $(STAMP)

# uv installs the pinned requirements; then bytecode for every package on every core, except
# the packages' own test folders and the installers, which the app and its tests never import.
$(STAMP): $(REQUIREMENTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	$(BIN)/uv pip install --quiet --native-tls --python $(BIN)/python -r requirements-dev.txt
	$(BIN)/python -m compileall -q -j 0 -x '/(tests?|pip|setuptools)/' $(VENV)/lib >/dev/null
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

# Debian's packages one after the other (one apt at a time), beside the virtualenv's install.
system-packages:
	scripts/ensure-chromium
	scripts/ensure-postgres-binaries

# Set-up in parallel where it can be: the virtualenv beside Debian's packages, then the lint
# and the migration check beside the template databases' build (tests/support/templates.py).
# Then one run, tests handed out one by one to three workers on the two cores: the browser
# tests' waits (servers starting, pages settling, mail arriving) are filled with the others'
# work (two workers left a third of the CPU idle: 602 s against 552 s of pytest on 6 Dec 2026);
# one OpenMP thread per worker. Bytecode is written (a machine may say
# not to): each CLI, jobs and server process a test starts then reuses the app's compiled modules.
# Every throwaway file of the run (databases, servers' data) lives in one scratch folder, in
# memory where the machine allows (scripts/test-scratch), removed at the end.
test:
	@$(MAKE) --no-print-directory -j 2 venv system-packages
	@scratch=$$(scripts/test-scratch) && trap 'rm -rf "$$scratch"' EXIT && \
	templates=$$scratch/templates && mkdir $$templates && export TMPDIR=$$scratch && \
	export CLINICDESK_TEST_TEMPLATES=$$templates OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE= && \
	{ $(BIN)/python -m tests.support.templates $$templates & } && \
	$(MAKE) --no-print-directory -j 2 lint check-migrations && \
	$(PYTEST) -n 3 --dist load tests

# One layer at a time, with its throwaway files in a scratch folder as above.
IN_SCRATCH = scratch=$$(scripts/test-scratch) && trap 'rm -rf "$$scratch"' EXIT && TMPDIR=$$scratch

test-unit: venv
	@$(IN_SCRATCH) $(PYTEST) tests/unit

test-integration: venv postgres
	@$(IN_SCRATCH) $(PYTEST) tests/integration

test-pages: venv
	@$(IN_SCRATCH) $(PYTEST) -n 2 tests/pages

test-e2e: venv chromium
	@$(IN_SCRATCH) $(PYTEST) -n 2 --dist loadfile tests/e2e

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
	$(BIN)/python -m bench.browser --desks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
