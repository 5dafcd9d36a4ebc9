# Hypertab developer commands. `make serve` and `make test` work on a fresh clone: they
# create .venv from pyproject.toml first (again only when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp
DATA_DIR ?= data
LINT_PATHS := protocol server client_sdk tests bench
TYPED_PATHS := protocol server client_sdk

.PHONY: serve test lint fmt bench venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/hypertab serve --demo --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict $(TYPED_PATHS)

fmt: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	@set -e; for script in bench/*.py; do \
		echo "# $$script" >&2; \
		$(BIN)/python $$script; \
	done

clean-venv:
	rm -rf $(VENV)
