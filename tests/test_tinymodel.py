"""The tiny CPU model: its tokenizer keeps tags whole, it saves and reloads like any HF model."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import torch
import transformers

from minisearch.agent.protocol import TAGS  # noqa: E402
from minisearch.errors import UserError  # noqa: E402
from minisearch.tiny.model import IM_END, IM_START, TinyModelConfig, init_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_model, toy_world):
    """The shared tiny model (conftest), its tokenizer, and the world it was built from."""
    tok = transformers.AutoTokenizer.from_pretrained(tiny_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    return tiny_model, tok, model, toy_world


def test_tags_and_chat_markers_are_single_tokens(tiny):
    _, tok, _, _ = tiny
    for tag in [*TAGS, IM_START, IM_END]:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    text = "<think>plan</think><search>Velkaran River</search>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[0] == "<think>" and "</search>" == pieces[-1]
    assert tok.decode(ids) == text


def test_chat_template_round_trips(tiny):
    _, tok, _, _ = tiny
    messages = [{"role": "system", "content": "Search, then answer."}, {"role": "user", "content": "Who?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nSearch, then answer.<|im_end|>\n<|im_start|>user\nWho?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert tok.decode(tok(text)["input_ids"]) == text


def test_tokenizer_learned_the_corpus(tiny):
    _, tok, _, world = tiny
    name = world.entities[0].name
    texts = [p["contents"] for p in world.passages]
    tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
    assert tokens < sum(len(t.encode()) for t in texts) / 2.5  # far better than bytes (2.97 bytes a token)
    assert tok.decode(tok(name)["input_ids"]) == name


def test_model_is_small_reloads_and_generates(tiny):
    out, tok, model, _ = tiny
    meta = json.loads((out / "tiny_model.json").read_text())
    assert 200_000 < meta["parameters"] < 3_000_000
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"]
    assert model.config.eos_token_id == tok.convert_tokens_to_ids(IM_END)
    assert model.config.vocab_size == len(tok)
    ids = tok("The river", return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    new = model.generate(ids, max_new_tokens=8, do_sample=True, pad_token_id=tok.pad_token_id)
    assert new.shape[1] > ids.shape[1]


def test_same_seed_same_weights(tiny, tmp_path):
    out, tok, model, world = tiny
    meta = json.loads((out / "tiny_model.json").read_text())
    again = init_model(world.passages, tmp_path / "again", TAGS,
                       TinyModelConfig(**{f.name: meta[f.name] for f in fields(TinyModelConfig)}))
    assert transformers.AutoTokenizer.from_pretrained(again).get_vocab() == tok.get_vocab()
    rebuilt = transformers.AutoModelForCausalLM.from_pretrained(again)
    for (na, pa), (_, pb) in zip(model.named_parameters(), rebuilt.named_parameters()):
        assert torch.equal(pa, pb), na


def test_no_passages_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="minisearch corpus"):
        init_model([], tmp_path / "m", TAGS)


def test_cli_init(tmp_path):
    from click.testing import CliRunner

    from minisearch.agent.protocol import system_prompt
    from minisearch.cli import main

    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["init", "--corpus", "toyworld:100", "--out", str(out),
                                       "--vocab-size", "2000"])
    assert result.exit_code == 0, result.output
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert len(tok(system_prompt())["input_ids"]) < len(system_prompt().split()) * 1.6
    assert len(tok(" searching", add_special_tokens=False)["input_ids"]) <= 2  # the prompts' words, not the world's
    assert tok.convert_tokens_to_ids("<search>") != tok.unk_token_id
