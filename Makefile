# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/demo
SEED ?= 0

.PHONY: run test lint format simulate-full bench-process clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## Simulate the demo beamtime and run the pipeline on it.
run: $(BIN)/.installed
	$(BIN)/xrdmap simulate $(DATA) --preset demo --seed $(SEED) --overwrite
	rm -rf $(DATA).zarr
	$(BIN)/xrdmap process $(DATA)/beamtime --store $(DATA).zarr
	$(BIN)/xrdmap draw-labels $(DATA)/truth --store $(DATA).zarr --n 139 --seed $(SEED) --out $(DATA)/labels.csv
	$(BIN)/xrdmap labels import $(DATA).zarr $(DATA)/labels.csv
	$(BIN)/xrdmap train $(DATA).zarr --registry data/registry
	$(BIN)/xrdmap predict $(DATA).zarr --registry data/registry

## Lint, format check and the test suite.
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The reference-size beamtime: 15 samples, 114,198 points (see README for size and time).
simulate-full: $(BIN)/.installed
	$(BIN)/xrdmap simulate data/full --preset full --seed $(SEED) --overwrite

## Benchmark ingest + integration on the full preset (minutes; not part of the tests).
bench-process: $(BIN)/.installed
	test -f data/full/beamtime/BEAMTIME_COMPLETE || $(MAKE) simulate-full
	$(BIN)/python benchmarks/process_benchmark.py data/full/beamtime --store data/full.zarr --cache warm
	$(BIN)/python benchmarks/codec_benchmark.py data/full.zarr

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
