"""`minisearch export verl`: the parquet files read back with veRL's columns, and
`compute_score` scoring with minisearch's reward. The `verl` tests load the same files with
veRL's own code (make test-verl)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from minisearch.agent.protocol import format_information, task_messages, write_turn
from minisearch.cli import main
from minisearch.export.verl_reward import compute_score
from minisearch.jsonl import read_jsonl

pq = pytest.importorskip("pyarrow.parquet")

COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder whose recipe made world, index and RAMP tasks, and names a dapo stage
    (own reward weights, 2 turns) and a QA traj stage that read them."""
    root = tmp_path_factory.mktemp("exportrun") / "run"
    stages = {"world": {"kind": "toyworld", "size": 150}, "corpus": {"source": "world/passages.jsonl"},
              "index": {"source": "corpus"}, "ramp": {"corpus": "corpus", "per_passage": 2}}
    recipe = root.parent / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "t", "out": str(root), "seed": 0, "stages": stages}, sort_keys=False))
    result = cli("run", recipe)
    assert result.exit_code == 0, result.output
    stages.update({
        "dapo": {"tasks": "ramp/train.jsonl", "index": "index", "model": "model",
                 "reward": {"format_weight": 0.2}, "rollout": {"max_turns": 2, "topk": 1}},
        "qa-traj": {"kind": "traj", "tasks": "world/qa/train.jsonl", "index": "index", "model": "model"}})
    moved = {"name": "t", "out": "elsewhere", "seed": 0, "stages": stages}  # export reads it from where it lies
    (root / "recipe.yaml").write_text(yaml.safe_dump(moved, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def exported(run_dir):
    out = run_dir.parent / "verl"
    result = cli("export", "verl", run_dir, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def rows(path):
    return pq.read_table(path).to_pylist()


def test_one_file_per_stage_and_split_with_verls_columns(run_dir, exported):
    def both(folder):
        return {"train": list(read_jsonl(folder / "train.jsonl")), "val": list(read_jsonl(folder / "dev.jsonl"))}

    ramp, qa = both(run_dir / "ramp"), both(run_dir / "world/qa")
    manifest = json.loads((exported / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["ramp-k1", "ramp-k2", "ramp-k3", "ramp-k4", "qa"]
    for split in ("train", "val"):
        for k in (1, 2, 3, 4):
            table = pq.read_table(exported / f"ramp-k{k}-{split}.parquet")
            assert table.column_names == COLUMNS
            got = table.to_pylist()
            want = [t for t in ramp[split] if t["metadata"]["mask_num"] == k]
            assert len(got) == len(want) > 0
            first, task = got[0], want[0]
            assert first["data_source"] == f"minisearch/ramp-k{k}" and first["ability"] == "search"
            assert first["prompt"] == task_messages(task, 2)  # the dapo stage's max_turns
            truth = first["reward_model"]["ground_truth"]
            assert first["reward_model"]["style"] == "rule" and truth["masks"] == task["metadata"]["masks"]
            info = first["extra_info"]
            assert info["split"] == split and info["id"] == task["id"] and info["mask_num"] == k
            assert info["reward"]["format_weight"] == 0.2
            assert info["tools_kwargs"]["search"]["create_kwargs"]["exclude_ids"] == [task["metadata"]["source_id"]]
        got = rows(exported / f"qa-{split}.parquet")
        assert len(got) == len(qa[split]) and got[0]["reward_model"]["ground_truth"]["masks"] == []
        assert got[0]["prompt"][1]["content"] == "Question: " + qa[split][0]["question"]
    tools = yaml.safe_load((exported / "search_tool.yaml").read_text())["tools"][0]
    assert tools["class_name"] == "minisearch.export.verl_tool.SearchTool"
    assert tools["config"]["retrieval_service_url"] == "http://127.0.0.1:8000/retrieve" and tools["config"]["topk"] == 1


def score(row, text):
    return compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"])


def answered(answer, searched=True):
    search = write_turn("search", "a query") + "\n" + format_information([]) + "\n" if searched else ""
    return search + write_turn("answer", answer)


def test_compute_score_gives_1_for_the_gold_and_0_for_a_wrong_answer(exported):
    for name in ("ramp-k1", "ramp-k3", "qa"):
        for row in rows(exported / f"{name}-val.parquet")[:5]:
            gold = row["reward_model"]["ground_truth"]["golden_answers"][0]
            right = score(row, answered(gold))
            assert right["score"] == pytest.approx(1.0) and right["answer"] == 1.0
            wrong = score(row, answered("Nobody knows"))
            assert wrong["answer"] == 0.0 and wrong["score"] == pytest.approx(0.2 / 1.2)  # the format's share
            assert score(row, answered(gold, searched=False))["score"] == 0.0  # the recipe asks for a search
            for bad in ("", "<answer> unclosed", None, "<search> q </search><answer> x </answer>"):
                assert score(row, bad)["score"] == 0.0


def test_compute_score_reads_verls_rendering_of_tool_messages(exported):
    """veRL decodes the response with the chat template's role lines and <tool_response> tags
    around the tool's text; the score is the same as minisearch's own rollout text."""
    row = rows(exported / "qa-val.parquet")[0]
    gold = row["reward_model"]["ground_truth"]["golden_answers"][0]
    verl_text = (write_turn("search", "a query") + "\nuser\n<tool_response>\n" + format_information([])
                 + "\n</tool_response>\nassistant\n" + write_turn("answer", gold))
    assert score(row, verl_text) == score(row, answered(gold))


def test_a_tasks_file_without_dev_holds_out_a_share(tmp_path):
    tasks = [{"id": f"q{i}", "question": f"What is {i}?", "golden_answers": [str(i)]} for i in range(40)]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    result = cli("export", "verl", path, "--out", tmp_path / "out", "--val-fraction", "0.25", "--max-turns", "3")
    assert result.exit_code == 0, result.output
    train, val = rows(tmp_path / "out/qa-train.parquet"), rows(tmp_path / "out/qa-val.parquet")
    assert (len(train), len(val)) == (30, 10)
    assert {r["extra_info"]["id"] for r in train + val} == {t["id"] for t in tasks}
    assert train[0]["extra_info"]["reward"]["format_weight"] == 0.1  # minisearch's default weights


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing", "does not exist"),
    (lambda d: d, "not a tasks JSONL"),
])
def test_bad_sources_are_clear_errors(tmp_path, make, says):
    result = cli("export", "verl", make(tmp_path), "--out", tmp_path / "out")
    assert result.exit_code != 0 and says in result.output and not (tmp_path / "out").exists()


def test_export_help_is_built():
    out = cli("export", "verl", "--help").output
    assert "not built" not in out and "--out" in out


# ---- veRL's own code on the exported files (make test-verl) ---------------------------------

@pytest.fixture(scope="module")
def verl_tokenizer(tiny_model):
    """The shared tiny model's tokenizer (conftest): veRL only needs a chat template to read the prompts."""
    pytest.importorskip("verl")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.verl
def test_verls_dataset_reads_every_file(exported, verl_tokenizer):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    manifest = json.loads((exported / "manifest.json").read_text())
    for stage in manifest["stages"]:
        files = [str(exported / stage["train"])]
        config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": True,
                                   "filter_overlong_prompts_workers": 1, "truncation": "error"})
        dataset = RLHFDataset(files, verl_tokenizer, config)
        assert len(dataset) == stage["train_rows"]
        item = dataset[0]
        assert item["raw_prompt"][0]["role"] == "system" and "<search>" in item["raw_prompt"][0]["content"]
        assert item["tools_kwargs"]["search"]["create_kwargs"]["exclude_ids"] is not None
        assert item["data_source"] == f"minisearch/{stage['name']}"


@pytest.mark.verl
def test_verls_reward_loader_calls_compute_score(exported):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    import minisearch.export.verl_reward as reward_module

    loader = {"path": reward_module.__file__, "name": "compute_score"}
    config = OmegaConf.create({"reward": {"custom_reward_function": loader}})
    fn = get_custom_reward_fn(config)
    for row in rows(exported / "ramp-k2-val.parquet")[:3]:
        gold = row["reward_model"]["ground_truth"]["golden_answers"][0]
        extra = {**row["extra_info"], "num_turns": 3, "rollout_reward_scores": {}}  # as the reward manager adds
        kwargs = {"data_source": row["data_source"], "ground_truth": row["reward_model"]["ground_truth"],
                  "extra_info": extra}
        assert fn(solution_str=answered(gold), **kwargs)["score"] == pytest.approx(1.0)
        assert fn(solution_str=answered("wrong words"), **kwargs)["answer"] == 0.0


@pytest.mark.verl
def test_verls_tool_registry_builds_our_search_tool_and_parser(run_dir, exported, verl_tokenizer):
    import asyncio

    from verl.experimental.agent_loop.tool_parser import ToolParser
    from verl.tools.tool_registry import initialize_tools_from_config

    from minisearch.search import open_searcher, read_meta
    from minisearch.search.server import background, make_app

    index = run_dir / "index"
    config = yaml.safe_load((exported / "search_tool.yaml").read_text())
    with open_searcher(index) as local, background(make_app(local, read_meta(index))) as url:
        config["tools"][0]["config"]["retrieval_service_url"] = url
        (exported.parent / "tool.yaml").write_text(yaml.safe_dump(config))
        [tool] = initialize_tools_from_config(str(exported.parent / "tool.yaml"))
        assert tool.name == "search"
        row = rows(exported / "ramp-k1-val.parquet")[0]
        create = row["extra_info"]["tools_kwargs"]["search"]["create_kwargs"]
        title = row["prompt"][1]["content"].split("Title: ", 1)[1].split("\n", 1)[0]

        async def call():
            instance, _ = await tool.create(create_kwargs=create)
            response, reward, metrics = await tool.execute(instance, {"query_list": [title]})
            await tool.release(instance)
            return response.text, metrics

        text, metrics = asyncio.run(call())
        want = local.search([title], k=1, exclude_ids=[create["exclude_ids"]])[0]
        assert text == format_information(want, 80) and metrics["queries"] == 1
        assert create["exclude_ids"][0] not in text

        parser = ToolParser.get_tool_parser("minisearch", verl_tokenizer)
        for turn, calls in ((write_turn("search", "Velk river", "look"), [{"query_list": ["Velk river"]}]),
                            (write_turn("answer", "Velk"), []), ("<search> unclosed", []), ("no tags", [])):
            ids = verl_tokenizer(turn, add_special_tokens=False)["input_ids"]
            _, found = asyncio.run(parser.extract_tool_calls(ids))
            assert [json.loads(c.arguments) for c in found] == calls and all(c.name == "search" for c in found)
