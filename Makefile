# glore-ray: the two quickstart commands are `make pipeline` and `make test` (README).
# Both create .venv on first use. CPU machines get the local CPU build of torch first, so the
# project's `torch>=` requirement is already met and no multi-GB CUDA wheel is downloaded;
# on a GPU machine set TORCH_SPEC (e.g. TORCH_SPEC=torch) and add EXTRAS=dev,gpu.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
CONFIG ?= configs/tiny.yaml
PYTEST_ARGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.glore-installed

.PHONY: setup pipeline test test-all test-gpu bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

# Command 1: the main job, the whole GLoRe pipeline on the tiny world (resumable: re-run to resume).
pipeline: $(STAMP)
	$(PY) jobs/pipeline.py --config $(CONFIG)

# Command 2: the test suite (slow and GPU tiers are behind markers: `make test-all`).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

# The GPU tier (vLLM on CUDA): on a GPU machine set up with TORCH_SPEC=torch EXTRAS=dev,gpu.
test-gpu: $(STAMP)
	$(PY) -m pytest -m gpu tests/gpu $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/rollouts.py && $(PY) bench/train.py && $(PY) bench/sorm_labels.py && $(PY) bench/serve_load.py

lint: $(STAMP)
	$(PY) -m ruff check glore_ray jobs bench tests

clean:
	rm -rf runs bench/results
