# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= data/demo
SEED ?= 0
# pytest-xdist workers of `make test` (one test module per worker at a time).
TEST_WORKERS ?= 2

.PHONY: run test test-fast lint typecheck format simulate-full bench-process bench-gpu bench-classifier bench-fit bench-predict bench-al server worker deploy clean

# Operations (see README "Operations"): where the deployments find things.
PREFECT_PORT ?= 4200
XRDMAP_HOME ?= $(CURDIR)
XRDMAP_BEAMTIMES ?= $(CURDIR)/data/beamtimes
XRDMAP_STORES ?= $(CURDIR)/data/stores
export XRDMAP_HOME XRDMAP_BEAMTIMES XRDMAP_STORES

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

## Simulate the demo beamtime and run the pipeline on it (fit, train, predict, report).
run: $(BIN)/.installed
	$(BIN)/xrdmap simulate $(DATA) --preset demo --seed $(SEED) --overwrite
	rm -rf $(DATA).zarr
	$(BIN)/xrdmap process $(DATA)/beamtime --store $(DATA).zarr
	$(BIN)/xrdmap fit $(DATA).zarr
	$(BIN)/xrdmap draw-labels $(DATA)/truth --store $(DATA).zarr --n 139 --seed $(SEED) --out $(DATA)/labels.csv
	$(BIN)/xrdmap labels import $(DATA).zarr $(DATA)/labels.csv
	$(BIN)/xrdmap train $(DATA).zarr
	$(BIN)/xrdmap predict $(DATA).zarr
	$(BIN)/xrdmap report $(DATA).zarr --sample-sheet $(DATA)/sample_sheet.csv

## Lint, format check, type check of the core and the whole test suite.
test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## The quick loop: lint, types and the tests not marked slow (under 2 minutes), on the
## same workers as `make test` (one process: 2 min 2 s against 1 min 23 s, same clone).
test-fast: lint typecheck
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The reference-size beamtime: 15 samples, 114,198 points (see README for size and time).
simulate-full: $(BIN)/.installed
	$(BIN)/xrdmap simulate data/full --preset full --seed $(SEED) --overwrite

## Benchmark ingest + integration on the full preset (minutes; not part of the tests).
bench-process: $(BIN)/.installed
	test -f data/full/beamtime/BEAMTIME_COMPLETE || $(MAKE) simulate-full
	test -f data/full-nxmx/beamtime/BEAMTIME_COMPLETE || \
		$(BIN)/xrdmap simulate data/full-nxmx --preset full --seed $(SEED) --layout nxmx --overwrite --quiet
	test -f data/full-nxmx.yaml || $(BIN)/xrdmap init data/full-nxmx/beamtime \
		--poni data/full-nxmx/beamtime/geometry.poni --mask data/full-nxmx/beamtime/mask.edf \
		--out data/full-nxmx.yaml
	$(BIN)/python benchmarks/process_benchmark.py data/full/beamtime --store data/full.zarr --cache warm \
		--also data/full-nxmx.yaml --also-store data/full-nxmx.zarr
	$(BIN)/python benchmarks/codec_benchmark.py data/full.zarr

## The GPU path against the CPU path, integration alone and ingest on local workers (a
## CUDA machine; CUDA ?= 12 or 13 picks CuPy's wheel; ~3 min on 16 cores).
CUDA ?= 12
bench-gpu: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[dev,cuda$(CUDA)]"
	$(BIN)/python benchmarks/gpu_benchmark.py
	$(BIN)/python benchmarks/gpu_ingest_benchmark.py --workers $$(nproc)

## The classifier against the ground truth (139 random labels, 5 seeds; ~10 min).
bench-classifier: $(BIN)/.installed
	test -f data/full.zarr/zarr.json || $(MAKE) bench-process
	$(BIN)/python benchmarks/classifier_benchmark.py data/full.zarr data/full/truth --seeds 5

## The phase fit against the ground truth: fraction errors, unknown-phase recall (~3 min).
bench-fit: $(BIN)/.installed
	test -f data/full.zarr/zarr.json || $(MAKE) bench-process
	$(BIN)/xrdmap fit data/full.zarr
	$(BIN)/python benchmarks/phase_fit_benchmark.py data/full.zarr data/full/truth

## Predict and query on the full preset against the model alone and the Dask path (~5 min;
## the first run trains a model into data/full-registry, ~3 min more).
bench-predict: $(BIN)/.installed
	test -f data/full.zarr/zarr.json || $(MAKE) bench-process
	$(BIN)/python benchmarks/predict_benchmark.py data/full.zarr data/full/truth --registry data/full-registry

## Active learning against random selection, simulated oracle (5 seeds; ~40 min).
bench-al: $(BIN)/.installed
	test -f data/full.zarr/zarr.json || $(MAKE) bench-process
	$(BIN)/python benchmarks/al_benchmark.py data/full.zarr data/full/truth --seeds 5 --out data/al-benchmark

## A Prefect server on 127.0.0.1 (SQLite in ~/.prefect; PostgreSQL: set
## PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://user:pass@host/db first).
server: $(BIN)/.installed
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

## The work pool and a process worker that runs the deployments' flows.
worker: $(BIN)/.installed
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect work-pool create xrdmap --type process --overwrite
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api PREFECT_FLOWS_HEARTBEAT_FREQUENCY=60 $(BIN)/prefect worker start --pool xrdmap

## Register the deployments of deployments/prefect.yaml with the server.
deploy: $(BIN)/.installed
	mkdir -p $(XRDMAP_BEAMTIMES) $(XRDMAP_STORES)
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/python deployments/automations.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
