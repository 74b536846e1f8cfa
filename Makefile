# The two README commands: `make demo` and `make test`. Everything else builds on the same .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SPARK  := $(VENV)/.installed-spark

.PHONY: demo test test-all lint bench fuzz report clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

# The Spark extra (pyspark, ~450 MB) only for the targets that exercise it (test-all, bench).
$(SPARK): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,spark]"
	touch $(SPARK)

demo: $(STAMP)
	$(BIN)/tiercast run --config configs/demo.yaml

# Two workers (pytest-xdist), each test module whole on one of them and the Spark tests together
# (tests/conftest.py); `.venv/bin/python -m pytest -q tests/...` runs a few tests on one.
# `make test` is the core suite on DuckDB: every unit, property and contract test and each command end to end.
# `make test-all` adds the Spark engine, the built wheel, a tracking server, raced and killed processes and
# benchmark runs (the markers spark, wheel and heavy): run it before a release and after touching those parts.
CORE := not (spark or wheel or heavy)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "$(CORE)"

test-all: $(SPARK)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(SPARK)
	$(BIN)/python -m tiercast.benchmarks.run --out benchmarks/results
	$(BIN)/python -m tiercast.benchmarks.readme

# The long fuzz campaign: hundreds of generated files, configs and arguments through the real CLI, more races
# and kills of the MLflow store, hundreds of messy invoice files through the loader (`make test-all` runs a few
# of the races and kills, `make test` a few cases of the rest).
fuzz: $(STAMP)
	TIERCAST_FUZZ_EXAMPLES=200 $(BIN)/python -m pytest -q tests/fuzz tests/pipeline/test_store.py \
		tests/pipeline/test_io.py::test_property_messy_inputs_account_for_every_row

# HTML report of the latest training run (after `make demo`); add a screenshot with scripts/report_screenshot.sh
report: $(STAMP)
	$(BIN)/tiercast report --config configs/demo.yaml --out outputs/report.html

clean:
	rm -rf $(VENV) outputs mlruns mlflow.db
