# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one a core; each takes whole test files, in their order.
PYTEST_WORKERS ?= auto

.PHONY: run test install install-dev lint fuzz soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the declared dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-bench: pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -e ./client
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

# The dev install adds the client (client/), tested against the real service.
$(VENV)/.installed-dev: pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./client
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make run: initialise ./var (SQLite, development master key) and serve on 127.0.0.1:8000
run: install
	$(BIN)/tiers init
	$(BIN)/tiers serve --host $(HOST) --port $(PORT)

## make test: the whole suite (PostgreSQL tests too when TIERS_TEST_POSTGRES_URL is set)
test: install-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit -q -c pyproject.toml -r tiers keys audit policy api errors client/tiers_client

## make fuzz: the hostile-input and OpenAPI fuzzing with a larger budget (CI runs a short one)
fuzz: install-dev
	TIERS_FUZZ_EXAMPLES=$${TIERS_FUZZ_EXAMPLES:-300} $(BIN)/python -m pytest -q \
		tests/api/test_openapi_fuzz.py tests/hardening/test_hostile_files.py \
		--hypothesis-seed=$${SEED:-0} -p no:cacheprovider

## make bench: figures and ratios against the ceiling and peers -> bench/results.json
## (BENCH_ARGS=--quick for about a minute; TIERS_BENCH_POSTGRES_URL adds PostgreSQL runs)
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## make soak: bounded loopback soak (SOAK_SECONDS, default 600) against a real tiers serve
soak: install-dev
	$(BIN)/python -m bench.soak --seconds $${SOAK_SECONDS:-600} $(SOAK_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .mypy_cache .ruff_cache
