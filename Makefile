# `make demo` and `make test` set themselves up on first use: .venv, uv, the project and its dev extras.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_LOGGING_LEVEL ?= WARNING
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test lint bench clean

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set nothing ever
# does, so every process would compile what it imports (importing prefect.server: 7.0 s, then 3.7 s)
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/winback demo --customers 20000

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# lint-imports: the layer contracts in pyproject.toml (imports point down; no Prefect below flows/)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/campaign.py

clean:
	rm -rf $(VENV) .prefect winback.db winback.db-wal winback.db-shm winback-warehouse.duckdb winback-warehouse.duckdb.wal demo_out
