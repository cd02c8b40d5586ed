# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/retrainer quickstart

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) retrainer-quickstart .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (not part of `make test`): Evidently runs in its own venv, pinned in
# benchmarks/requirements-evidently.txt. Takes about 45 minutes on 2 cores; see docs/benchmarks.md.
.PHONY: bench
BENCH_EVIDENTLY := benchmarks/.venv-evidently

$(BENCH_EVIDENTLY)/.installed: benchmarks/requirements-evidently.txt
	$(PYTHON) -m venv $(BENCH_EVIDENTLY)
	$(BENCH_EVIDENTLY)/bin/python -m pip install --quiet -r benchmarks/requirements-evidently.txt
	touch $@

bench: $(VENV)/.installed $(BENCH_EVIDENTLY)/.installed
	$(BIN)/python benchmarks/drift_bench.py --profile
	$(BIN)/python benchmarks/profile_scaling.py --profile
	$(BIN)/python benchmarks/report.py

# The serving benchmark of issue 5: retrainer serve vs mlflow models serve (MLflow in its
# own venv, pinned in benchmarks/requirements-mlflow.txt). About 10 minutes on 2 cores;
# uses wrk for the throughput runs when installed (apt-get install wrk). See docs/benchmarks.md.
.PHONY: bench-serve
BENCH_MLFLOW := benchmarks/.venv-mlflow

$(BENCH_MLFLOW)/.installed: benchmarks/requirements-mlflow.txt
	$(PYTHON) -m venv $(BENCH_MLFLOW)
	$(BENCH_MLFLOW)/bin/python -m pip install --quiet -r benchmarks/requirements-mlflow.txt
	touch $@

bench-serve: $(VENV)/.installed $(BENCH_MLFLOW)/.installed
	$(BIN)/python benchmarks/serve_bench.py --omp-threads default 1

# The backtest scaling benchmark of issue 7: backtest wall time against the number of
# batches and the rows per batch. About 5 minutes on 2 cores; see docs/benchmarks.md.
.PHONY: bench-backtest
bench-backtest: $(VENV)/.installed
	$(BIN)/python benchmarks/backtest_scaling.py
