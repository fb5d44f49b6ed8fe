# Two commands set a fresh machine up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system-deps demo test lint typecheck clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## System packages for the tests (PostgreSQL server); installs with apt-get when run as root.
system-deps:
	bash scripts/install-system-deps.sh

## Run the end-to-end demo on a local warehouse directory (./warehouse).
demo: install
	$(BIN)/lakehouse demo

lint: install
	$(BIN)/ruff check lakehouse api tests benchmarks
	$(BIN)/ruff format --check lakehouse api tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

## Install everything and run the whole test suite (what CI runs). The suite starts a few hundred Python
## processes (CLI runs, query workers, ingestors, servers): they share compiled bytecode even where the
## environment sets PYTHONDONTWRITEBYTECODE (each would compile lakehouse's ~29k lines again). The install
## compiles nothing (--no-compile: 84 -> 53 s here; most of pyspark's and the other libraries' modules are never
## imported, the first import compiles the others), and mypy runs while the tests do (they leave a core idle
## now and then, waiting on servers and subprocesses); its verdict is printed after theirs and fails the target.
test: install system-deps
	$(BIN)/ruff check lakehouse api tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy > .mypy.out 2>&1 & mypy=$$!; \
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest; tests=$$?; \
	wait $$mypy; typed=$$?; echo "mypy:"; cat .mypy.out; rm -f .mypy.out; \
	test $$tests -eq 0 && test $$typed -eq 0

clean:
	rm -rf $(VENV) warehouse .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
