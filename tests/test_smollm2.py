"""A real pretrained model through the whole loop (slow-marked; .ci/run runs it): SmolLM2-135M-Instruct,
fetched from PyPI and converted by `minisearch pretrained`, on the Wikipedia summaries of `make data`,
through recipes/smollm2-cpu.yaml at smoke size (~11 minutes on 2 cores): scripted and multi-agent
teacher rounds, RAMP SFT, DAPO with the curriculum, and the held-out eval.

It asserts what a real model must show: held-out RAMP span accuracy after RAMP SFT above the base
model's on the same tasks (greedy), the model folder carrying SmolLM2's own chat template, the
multi-agent round run and reported even when the 135M teacher gets nothing right, and the final
agent merged into one plain folder answering held-out tasks token for token as base + adapter."""

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import REALTEXT, RECIPES, greedy_trajectories, run_recipe_process

from minisearch.jsonl import read_jsonl

pytestmark = pytest.mark.slow

# The recipe's stage list at smoke size; the full settings are recipes/smollm2-cpu.yaml itself.
SMOKE = ["traj.limit=160", "agents-traj.limit=8", "agents-traj.batch=8", "sft.max_steps=30",
         "sft.batch_size=4", "dapo.steps=2", "dapo.batch_tasks=4", "dapo.promote_steps=1", "dapo.val_tasks=8",
         "eval.limit=32"]


class Smoke(NamedTuple):
    out: Path  # the run folder
    log: str  # what `minisearch run` printed


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Smoke:
    if not REALTEXT.is_file():
        pytest.skip("no Wikipedia summaries: run `make data`")
    out = tmp_path_factory.mktemp("smollm2") / "run"
    ran = run_recipe_process(RECIPES / "smollm2-cpu.yaml", out, [f"corpus.source={REALTEXT}", *SMOKE])
    assert ran.code == 0, ran.log[-4000:]
    return Smoke(out, ran.log)


def test_ramp_sft_beats_the_base_model_on_held_out_spans(smoke_run):
    out = smoke_run.out
    rows = {(r["model"], r["set"]): r for r in json.loads((out / "eval" / "metrics.json").read_text())["rows"]}
    base, sft = rows[("base", "ramp-dev")], rows[("ramp-sft", "ramp-dev")]
    assert base["n"] == sft["n"] == 32
    assert sft["span_acc"] > base["span_acc"], (base, sft)
    assert sft["format_ok"] > 0.5  # the tags are spelled in SmolLM2's ordinary tokens and it learnt them
    assert ("ramp-dapo", "ramp-dev") in rows


def test_the_model_is_smollm2_with_its_own_chat_template(smoke_run):
    out = smoke_run.out
    from transformers import AutoTokenizer

    source = json.loads((out / "pretrained" / "source.json").read_text())
    assert source["architecture"] == "LlamaForCausalLM" and source["parameters"] == 134_515_008
    tok = AutoTokenizer.from_pretrained(str(out / "pretrained"))
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and "SmolLM" in prompt  # its template, its default system
    trajectory = json.loads((out / "traj" / "round-0.jsonl").open().readline())
    assert "<search>" in trajectory["turns"][0]["text"]


def test_the_multi_agent_round_ran_and_reported_its_acceptance(smoke_run):
    folder = smoke_run.out / "agents-traj"
    stats = json.loads((folder / "stats.json").read_text())[0]
    accepted = len(list(read_jsonl(folder / "round-0.jsonl")))  # what the round wrote is what it reports
    assert stats["who"] == "agents" and stats["tasks"] == 8 and stats["accepted"] == accepted
    assert stats["acceptance"] == round(accepted / 8, 4) and sum(stats["ends"].values()) == 8
    assert f"traj round 0 (agents): {accepted}/8 accepted" in smoke_run.log


def test_the_merged_final_agent_answers_as_base_and_adapter_do(smoke_run, tmp_path):
    from huggingface_hub import ModelCard

    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.search import open_searcher

    out = smoke_run.out
    merged = tmp_path / "agent"
    done = subprocess.run([sys.executable, "-m", "minisearch.cli", "export", "merged", str(out), "--out", str(merged)],
                          capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    card = ModelCard.load(merged / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.license == "apache-2.0"
    tasks = list(read_jsonl(out / "ramp" / "dev.jsonl"))[:4]
    with open_searcher(out / "index") as searcher:
        adapter, alone = [greedy_trajectories(b.generate, b.tokenizer, searcher, tasks, max_new_tokens=96) for b in (
            CpuBackend(out / "pretrained", out / "dapo" / "adapter"), CpuBackend(merged))]
    assert alone == adapter
