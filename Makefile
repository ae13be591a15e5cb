# outreach: `make run` starts the engine on the embedded default, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BIND ?= 127.0.0.1:8000
OUTREACH_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: install run check test test-sqlite test-postgres bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The unsubscribe links of development mail point at the address `make run` serves on.
run: export OUTREACH_BASE_URL ?= http://$(BIND)
run: install
	$(BIN)/outreach migrate --noinput
	$(BIN)/outreach apply examples/pool.toml
	$(BIN)/outreach campaign apply examples/campaign.toml
	$(BIN)/outreach leads import examples/leads.csv --campaign example-intro
	$(BIN)/outreach campaign start example-intro --if-draft
	$(BIN)/outreach ensure_admin
	$(BIN)/outreach run --bind $(BIND)

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy outreach
	$(BIN)/lint-imports
	$(BIN)/python scripts/audit_dependencies.py

test-sqlite: install
	DATABASE_URL=sqlite:///var/outreach-test.sqlite3 OUTREACH_TEST_DATABASE_NAME=var/test-suite.sqlite3 $(BIN)/pytest $(PYTEST_ARGS)

# Runs again on PostgreSQL when one answers at OUTREACH_TEST_DATABASE_URL; says so when not.
test-postgres: install
	@if $(BIN)/python -m outreach.lib.pgcheck "$(OUTREACH_TEST_DATABASE_URL)"; then \
		DATABASE_URL="$(OUTREACH_TEST_DATABASE_URL)" $(BIN)/pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL not reachable at $(OUTREACH_TEST_DATABASE_URL): PostgreSQL run skipped"; \
	fi

# The two passes run side by side: each mostly waits (on its database, on the processes and
# servers its tests start), and both together take about as long as the PostgreSQL one
# alone. The SQLite pass writes to var/test-sqlite.log, printed once both have ended.
test: check
	@mkdir -p var
	@$(MAKE) --no-print-directory test-sqlite > var/test-sqlite.log 2>&1 & sqlite=$$!; \
	$(MAKE) --no-print-directory test-postgres; postgres=$$?; \
	wait $$sqlite; lite=$$?; \
	echo "== the SQLite pass (var/test-sqlite.log)"; cat var/test-sqlite.log; \
	echo "== SQLite pass: exit $$lite; PostgreSQL pass: exit $$postgres"; \
	[ $$lite -eq 0 ] && [ $$postgres -eq 0 ]

clean:
	rm -rf $(VENV) var/test.sqlite3*
