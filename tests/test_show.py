"""`minisearch show`: the held-out tally of a run's eval, then questions right and wrong in the
tally's proportion, spread through the set, answered live."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from minisearch.cli import main
from minisearch.cli.show import held_out
from minisearch.errors import UserError
from minisearch.jsonl import write_jsonl


def make_run(root, model="m", index="i", right=(1, 0, 0, 1, 0, 0, 0, 0, 0, 0)):
    """A run folder with an eval stage that scored 10 QA tasks (and a RAMP set the tally skips)."""
    tasks = [{"id": f"q{i}", "question": f"Question {i}?", "golden_answers": [f"gold {i}"],
              "metadata": {"type": "bridge" if i % 2 else "one-hop"}} for i in range(len(right))]
    write_jsonl(root / "qa.jsonl", tasks)
    stages = {"eval": {"model": model, "index": index, "sets": {"ramp-dev": "ramp.jsonl", "qa": str(root / "qa.jsonl")},
                       "models": {"base": None, "qa-sft": "a"}}}
    (root / "recipe.yaml").write_text(yaml.safe_dump({"name": "r", "stages": stages}))
    samples = [{"model": "base", "set": "qa", "task_id": t["id"], "em": 0.0} for t in tasks]
    samples += [{"model": "qa-sft", "set": "qa", "task_id": t["id"], "em": float(ok), "answer": "x"}
                for t, ok in zip(tasks, right)]
    samples += [{"model": "qa-sft", "set": "ramp-dev", "task_id": "r0", "spans": 1, "all_spans": 1.0}]
    write_jsonl(root / "eval" / "samples.jsonl", samples)
    return tasks


def test_the_tally_and_examples_in_the_tallys_proportion(tmp_path):
    tasks = make_run(tmp_path)
    tally, examples = held_out(tmp_path, n=3)
    assert tally[0] == "held-out qa, qa-sft: 2 of 10 answered exactly (20%)"
    assert tally[1] == "  by type: bridge 1/5, one-hop 1/5"
    # 20% of 3 rounds to 1 right (the first); two wrong ones spread through the eight wrong
    assert [(e["question"], e["right"]) for e in examples] == [
        (tasks[0]["question"], True), (tasks[1]["question"], False), (tasks[6]["question"], False)]
    assert examples[0]["gold"] == ["gold 0"] and examples[1]["type"] == "bridge"
    _, examples = held_out(tmp_path, n=4)  # one of each at least, whatever the share
    assert [e["right"] for e in examples] == [True, False, False, False]


def test_a_run_without_eval_samples_says_what_to_do(tmp_path):
    stages = {"world": {"kind": "toyworld", "size": 20}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "r", "stages": stages}))
    with pytest.raises(UserError, match="no eval samples yet"):
        held_out(tmp_path)
    with pytest.raises(UserError, match="not a run folder"):
        held_out(tmp_path / "nowhere")


def test_show_answers_the_examples_live(toy_run, tmp_path):
    root, world = toy_run
    make_run(tmp_path, model=str(root / "model"), index=str(root / "index"))
    (tmp_path / "run.json").write_text(json.dumps({"model": str(root / "model"), "index": str(root / "index")}))
    result = CliRunner().invoke(main, ["show", str(tmp_path), "-n", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("held-out qa, qa-sft: 2 of 10") and result.output.count("\nquestion (") == 2
    assert result.output.count("  gold: ") == 2 and "(wrong)" in result.output  # the untrained model answers none
