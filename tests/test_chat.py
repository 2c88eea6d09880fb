"""chat and ask: searches and titles shown as they happen, history only when asked, clean exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from click.testing import CliRunner  # noqa: E402
from helpers import results_shown  # noqa: E402

from minisearch.agent.chat import Agent, ChatConfig, repl, resolve  # noqa: E402
from minisearch.agent.rollout import ScriptedGenerator  # noqa: E402
from minisearch.cli import main  # noqa: E402
from minisearch.errors import UserError  # noqa: E402


@pytest.fixture
def run_dir(toy_run):
    return toy_run


def scripted(agent, contexts):
    def script(context):
        contexts.append(context)
        if results_shown(context):
            return "<think>the page says so</think><answer>Ostrivel</answer>"
        return "<think>look it up</think><search>river length</search>"
    agent.generate = ScriptedGenerator(agent.backend.tokenizer, script)


def lines_of(questions):
    it = iter(questions)

    def read(_prompt):
        item = next(it, None)
        if item is None:
            raise EOFError
        if isinstance(item, BaseException):
            raise item
        return item
    return read


def test_repl_shows_searches_titles_and_answer(run_dir):
    root, world = run_dir
    agent = Agent(ChatConfig(index=str(root / "index"), model=str(root / "model"), show_thoughts=True))
    contexts, out = [], []
    scripted(agent, contexts)
    repl(agent, read=lines_of(["Which river is longest?"]), echo=out.append)
    text = "\n".join(out)
    assert "  thought: look it up" in text and "  search: river length" in text
    found = next(line for line in out if line.startswith("    found: "))
    titles = found[len("    found: "):].split(" · ")
    assert len(titles) == 3 and all(t in {e.name for e in world.entities} for t in titles)
    assert out.index("  search: river length") < out.index(found) < out.index("  answer: Ostrivel")


def test_history_only_when_asked(run_dir):
    root, _ = run_dir
    for keep in (False, True):
        agent = Agent(ChatConfig(index=str(root / "index"), model=str(root / "model"), keep_history=keep))
        contexts = []
        scripted(agent, contexts)
        repl(agent, read=lines_of(["first question", "second question"]), echo=lambda _: None)
        last = contexts[-1]
        assert "second question" in last and ("first question" in last) is keep


def test_ctrl_c_stops_an_answer_and_the_loop_goes_on(run_dir):
    root, _ = run_dir
    agent = Agent(ChatConfig(index=str(root / "index"), model=str(root / "model")))

    def interrupted(*_, **__):
        raise KeyboardInterrupt
    agent.generate = interrupted
    out = []
    repl(agent, read=lines_of([KeyboardInterrupt(), "a question"]), echo=out.append)
    assert "  (stopped)" in out and out[-1] == ""  # then Ctrl-D left cleanly


def test_run_folder_resolution(run_dir, tmp_path):
    root, _ = run_dir
    assert resolve(str(root), None, None) == (str(root / "index"), str(root / "model"), None, 3)
    (tmp_path / "run.json").write_text('{"index": "i", "model": "m", "adapter": "a", "topk": 1}')
    assert resolve(str(tmp_path), None, None) == ("i", "m", "a", 1)  # the run's passages per search
    assert resolve(str(tmp_path), None, None, topk=5)[3] == 5  # unless told otherwise
    (tmp_path / "idx").mkdir()
    (tmp_path / "run.json").write_text('{"index": "idx", "model": "org/some-model"}')
    assert resolve(str(tmp_path), None, None)[:2] == (str(tmp_path / "idx"), "org/some-model")  # run-relative; an id
    (tmp_path / "run.json").unlink()
    (tmp_path / "sft" / "adapter").mkdir(parents=True)
    (tmp_path / "dapo" / "adapter").mkdir(parents=True)
    assert resolve(str(tmp_path), None, None)[2] == str(tmp_path / "dapo" / "adapter")
    with pytest.raises(UserError, match="make demo"):
        resolve(str(tmp_path / "none"), None, None)
    with pytest.raises(UserError, match="--index"):
        resolve(None, str(root / "index"), None)


def test_ask_json_with_the_tiny_model(run_dir):
    root, _ = run_dir
    result = CliRunner().invoke(main, ["ask", "How long is the river?", "--run", str(root), "--json"])
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"question", "answer", "end", "searches"} and summary["end"]
    assert result.exit_code == (0 if summary["answer"] is not None else 1)


@pytest.fixture(scope="module")
def trained_run(toy_env, tmp_path_factory):
    """A run folder whose adapter learnt two scripted QA trajectories by heart (SFT, 150 steps):
    asked one of those questions, chat must rebuild the context training saw, token for token,
    for the model to search and answer as taught."""
    from minisearch.agent.rollout import to_record
    from minisearch.jsonl import write_jsonl
    from minisearch.records import passage_titles
    from minisearch.train import sft
    from minisearch.train.teachers import TeachConfig, teach
    from minisearch.train.teachers.scripted import ScriptedTeacher

    world, searcher, tok, root = toy_env
    cfg = TeachConfig()  # chat's defaults: 3 passages per search, 80 words each, 4 searches
    tasks = [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:2]
    trajs = teach(tasks, ScriptedTeacher(cfg, passage_titles(world.passages)), searcher.search, tok, cfg)
    records = [to_record(traj, task, cfg.max_turns, "scripted") for traj, task in zip(trajs, tasks)]
    out = tmp_path_factory.mktemp("trained")
    write_jsonl(out / "traj" / "round-0.jsonl", records)
    sft.run(sft.SftConfig(data=str(out / "traj"), model=str(root / "model"), out=str(out / "sft"), lora_rank=8,
                          lr=5e-3, max_steps=150, batch_size=2, save_steps=1000, seed=0), echo=lambda *_: None)
    made = {"index": str(root / "index"), "model": str(root / "model"), "adapter": str(out / "sft" / "adapter")}
    (out / "run.json").write_text(json.dumps(made))
    return out, records


def test_chat_in_a_terminal(trained_run):
    """Driven as a user would: a question, its search with the titles found, the answer, Ctrl-C, Ctrl-D."""
    import pexpect

    root, records = trained_run
    taught = records[0]
    cmd = str(Path(sys.executable).with_name("minisearch"))
    child = pexpect.spawn(cmd, ["chat", "--run", str(root)], timeout=120, encoding="utf-8")
    prompt = r"(?m)^\? "  # the prompt at the start of a line, not a "? " inside the output
    child.expect_exact("Ask a question")
    child.expect(prompt)
    child.sendline(taught["question"])
    child.expect_exact(f"  search: {taught['queries'][0]}")
    child.expect_exact("    found: ")
    child.expect_exact(f"  answer: {taught['answer']}")
    child.expect(prompt)
    child.sendintr()  # Ctrl-C at the prompt: a new prompt, not an exit
    child.expect(prompt)
    child.sendeof()  # Ctrl-D: leave
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_run_without_run_json_finds_its_model_by_its_recipe(tmp_path):
    """Before run.json (a run under way), chat --run takes the model of the recipe's own stages:
    the demo's is runs/demo/warmup, not a folder named model."""
    from minisearch.pipeline.runner import planned_model

    (tmp_path / "recipe.yaml").write_text("stages:\n  corpus: {source: toyworld:60}\n  index: {source: corpus}\n"
                                          "  warmup: {model: some/init, corpus: corpus}\n"
                                          "  sft: {data: corpus, model: warmup}\n")
    made = planned_model(tmp_path)
    assert made == {"model": str(tmp_path / "warmup"), "index": str(tmp_path / "index")}  # no adapter yet
    (tmp_path / "sft" / "adapter").mkdir(parents=True)
    assert resolve(str(tmp_path), None, None, planned=planned_model(tmp_path)) == (
        str(tmp_path / "index"), str(tmp_path / "warmup"), str(tmp_path / "sft" / "adapter"), 3)
