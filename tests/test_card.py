"""Model cards: every adapter folder of a finished run holds a README.md whose header the Hub's own
parser (huggingface_hub's ModelCard) reads, naming the base, its license and the adapter's eval
rows; the body says protocol, corpus, settings and the command that makes it again. The upload
itself needs a token and internet: without them a clear error that names both."""

import json

import pytest
from click.testing import CliRunner

from minisearch.agent.protocol import STOP
from minisearch.cli import main
from minisearch.errors import UserError
from minisearch.export.card import base_of, card_text
from minisearch.pipeline.stages import run_stages


def test_each_adapter_folder_holds_a_card_with_its_base_and_eval_rows(finished_run):
    from huggingface_hub import ModelCard

    table = json.loads((finished_run / "eval" / "metrics.json").read_text())["rows"]
    for stage, label in (("sft", "ramp-sft"), ("dapo", "ramp-dapo")):
        card = ModelCard.load(finished_run / stage / "adapter" / "README.md")
        assert card.data.base_model == "warmup" and card.data.library_name == "peft"  # the run's warmed-up model
        assert card.data.license == "apache-2.0" and {"minisearch", "search-agent", stage} <= set(card.data.tags)
        mine = [r for r in table if r["model"] == label]
        got = {(e.dataset_name, e.metric_type): e.metric_value for e in card.data.eval_results}
        assert {(r["set"], "format_ok") for r in mine} <= set(got) and len(mine) == 2
        for r in mine:
            key = "span_acc" if r["set"] == "ramp-dev" else "em"
            assert got[(r["set"], key)] == r[key]
            assert f"| {label} | {r['set']} | {r['n']} |" in card.text  # the table's row in the body
        assert all(e.metric_name.endswith(f"({label})") for e in card.data.eval_results)
        for text in (*STOP, "<information>", "minisearch run recipe.yaml", f"--from {stage}", "whoosh BM25",
                     "Corpus: `<run>/corpus`", "model: <run>/warmup", "You answer by searching"):
            assert text in card.text, text
    dapo = ModelCard.load(finished_run / "dapo" / "adapter" / "README.md")
    assert "on top of the adapter `sft/adapter`" in dapo.text


def test_a_card_for_the_hub_names_only_a_hub_base(finished_run):
    from huggingface_hub import ModelCard

    card = ModelCard(card_text(finished_run, run_stages(finished_run), "sft", hub=True))
    assert card.data.base_model is None and "of `warmup`" in card.text  # the tiny model is not on the Hub
    merged = ModelCard(card_text(finished_run, run_stages(finished_run), "sft", merged=True))
    assert merged.data.library_name == "transformers" and "lora" not in merged.data.tags


def test_the_base_and_its_license(tmp_path):
    assert base_of("Qwen/Qwen2.5-1.5B-Instruct", tmp_path) == {
        "name": "Qwen/Qwen2.5-1.5B-Instruct", "hub_id": "Qwen/Qwen2.5-1.5B-Instruct", "license": "apache-2.0"}
    assert base_of("someone/unknown-model", tmp_path)["license"] == "other"  # nothing says: the Hub's "other"
    got = tmp_path / "model"
    got.mkdir()
    (got / "source.json").write_text(json.dumps({"model": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, "
                                                          "dequantised)", "license": "Apache-2.0"}))
    assert base_of(str(got), tmp_path) == {"name": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                           "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "apache-2.0"}


def test_upload_needs_a_hub_base_a_token_and_internet(finished_run, monkeypatch, tmp_path):
    from huggingface_hub import constants

    def hub(*args):
        return CliRunner().invoke(main, ["export", "hub", str(finished_run), *args])

    result = hub("sft")
    assert result.exit_code == 2 and "not on the Hub" in result.output and "--merged" in result.output
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no stored token
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = hub("sft", "--merged")
    assert result.exit_code == 2, result.output
    assert "no Hugging Face token was found" in result.output and "internet" in result.output
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = hub("dapo", "--merged", "--repo", "me/agent")
    assert result.exit_code == 2 and "HF_HUB_OFFLINE is set" in result.output and "token" in result.output
    assert "dapo/adapter/README.md" in result.output  # where the card is, for a look without uploading
    with pytest.raises(UserError, match="no stage 'sfft' that trains an adapter \\(did you mean 'sft'\\?\\)"):
        from minisearch.export.card import adapter_stage

        adapter_stage(run_stages(finished_run), "sfft", finished_run)
