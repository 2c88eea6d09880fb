"""`minisearch export merged`: the final agent of a finished run, its adapter merged into the base, as a
plain Hugging Face folder that AutoModelForCausalLM loads; greedy, it answers the held-out questions
token for token as base + adapter do, and its generation_config stops a turn at the protocol's tags."""

import json

import pytest
from click.testing import CliRunner
from helpers import greedy_trajectories

from minisearch.agent.protocol import STOP
from minisearch.cli import main
from minisearch.jsonl import read_jsonl


@pytest.fixture(scope="module")
def merged(finished_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "agent"
    result = CliRunner().invoke(main, ["export", "merged", str(finished_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_merged_agent_answers_the_held_out_questions_as_the_adapter_does(finished_run, merged):
    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.search import open_searcher

    made = json.loads((finished_run / "run.json").read_text())
    assert made["adapter"] == "dapo/adapter"  # the run's final agent, what --stage defaults to
    tasks = list(read_jsonl(finished_run / "world" / "qa" / "dev.jsonl"))[:4]
    tasks += list(read_jsonl(finished_run / "ramp" / "dev.jsonl"))[:2]
    with open_searcher(finished_run / "index") as searcher:
        answers = [greedy_trajectories(b.generate, b.tokenizer, searcher, tasks) for b in (
            CpuBackend(finished_run / "warmup", finished_run / "dapo" / "adapter"), CpuBackend(merged),
            CpuBackend(finished_run / "warmup"))]
    adapter, alone, base = answers
    assert alone == adapter
    assert base != adapter  # the adapter changes the answers, so the equality above says something


def test_the_folder_is_a_plain_model_with_its_template_stop_strings_and_card(finished_run, merged):
    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.rollout import prompt_ids

    assert not list(merged.glob("adapter*"))  # no peft files: a plain model
    model = AutoModelForCausalLM.from_pretrained(merged)
    tok = AutoTokenizer.from_pretrained(merged)
    config = GenerationConfig.from_pretrained(merged)
    assert config.stop_strings == list(STOP) and config.do_sample is False and config.eos_token_id == tok.eos_token_id
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    card = ModelCard.load(merged / "README.md")
    assert card.data.base_model == "warmup" and card.data.library_name == "transformers"
    task = next(iter(read_jsonl(finished_run / "world" / "qa" / "dev.jsonl")))
    prompt = prompt_ids(tok, task, 4)[0]  # the protocol's prompt in the model's chat template
    out = model.generate(torch.tensor([prompt]), max_new_tokens=48, tokenizer=tok)  # its own generation_config
    adapter = CpuBackend(finished_run / "warmup", finished_run / "dapo" / "adapter")
    first = adapter.generate([prompt], max_new_tokens=48, temperature=0.0, stop=STOP)[0][0]
    assert out[0, len(prompt):].tolist() == first.token_ids


def test_a_folder_in_the_way_is_refused(finished_run, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", "merged", str(finished_run), "--stage", "sft", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is not empty" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
