# Hypertab developer commands. `make serve` and `make test` work on a fresh clone: they
# create .venv from pyproject.toml first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
DATA_DIR ?= data
HOST ?=
PORT ?=
LINT_PATHS := protocol server client_sdk tests bench
TYPED_PATHS := protocol server client_sdk

.PHONY: serve test lint fmt bench venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "make: setting up $(VENV) from pyproject.toml (first run, or pyproject.toml changed)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "make: installing hypertab and its dependencies into $(VENV) (about 2 minutes the first time)..."
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)
	@echo "make: done. The command line is $(BIN)/hypertab (or: source $(BIN)/activate, then hypertab)"

# make serve [PORT=8765] [HOST=127.0.0.1] [DATA_DIR=data]; settings: docs/operations.md
serve: $(STAMP)
	$(BIN)/hypertab serve --demo --data-dir $(DATA_DIR) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict $(TYPED_PATHS)

fmt: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

# The benches `make bench` runs, each at its default size (HYPERTAB_BENCH_QUICK=1 gives the
# long ones a smaller default count: see bench/report.py). Every other bench/*.py is a helper
# (BENCH_HELPERS); tests/benches/test_bench_report.py checks that each file is in one list or the other.
BENCHES := commit fanout connections handshake handshake_verify ratelimit revocation \
	formula query mcp_calls alerts pingflood crossnode browser backup slowread fuzz idle session \
	publish jsoncells watermark
BENCH_HELPERS := report relay_server durable_relay_server wsreader fuzz_target proctree

bench: $(STAMP)
	@failed=""; for name in $(BENCHES); do \
		echo "# bench/$$name.py" >&2; \
		HYPERTAB_BENCH_QUICK=1 $(BIN)/python bench/$$name.py || failed="$$failed $$name"; \
	done; \
	echo "# JSON lines and PNG plots in bench/out/" >&2; \
	if [ -n "$$failed" ]; then echo "# failed:$$failed" >&2; exit 1; fi

clean-venv:
	rm -rf $(VENV)
