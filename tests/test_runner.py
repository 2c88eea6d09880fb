"""The recipe runner: stages in order, complete ones skipped, changes rerun what follows, a
killed run resumes with nothing completed lost, and the report is built at the end."""

import textwrap

import pytest
from helpers import RECIPES

from minisearch.errors import UserError
from minisearch.pipeline.runner import run_recipe

RECIPE = """
    name: mini
    seed: 3
    stages:
      world: {kind: toyworld, size: 80}
      corpus: {source: world/passages.jsonl}
      index: {source: corpus}
      ramp: {corpus: corpus, index: index, dev_fraction: 0.1}
      traj: {tasks: ramp/train.jsonl, index: index, model: MODEL, teach: {answer_form: spans}}
"""


@pytest.fixture
def recipe(tmp_path, tiny_model):
    """The recipe, its --set for a run folder in tmp_path, and that folder; the traj stage
    renders its trajectories in the tiny model's tokens."""
    path = tmp_path / "mini.yaml"
    path.write_text(textwrap.dedent(RECIPE).replace("MODEL", str(tiny_model)))
    return str(path), [f"out={tmp_path / 'run'}"], tmp_path / "run"


def run(path, sets, **kw):
    lines = []
    run_recipe(path, sets, echo=lines.append, **kw)
    return [line for line in lines if line.startswith("[")]


def test_runs_in_order_then_skips_what_is_complete(recipe):
    path, sets, root = recipe
    first = run(path, sets)
    assert first == ["[1/5] world (toyworld): running", "[2/5] corpus (corpus): running",
                     "[3/5] index (index): running", "[4/5] ramp (ramp): running", "[5/5] traj (traj): running"]
    for stage in ("world", "corpus", "index", "ramp", "traj"):
        assert (root / stage / "done.json").is_file()
    assert (root / "report.md").is_file() and (root / "run.json").is_file()
    assert "| traj |" in (root / "report.md").read_text()
    assert all(line.endswith("complete, skipped") for line in run(path, sets))


def test_a_changed_setting_reruns_that_stage_and_everything_after(recipe):
    path, sets, root = recipe
    run(path, sets)
    world = (root / "world" / "passages.jsonl").stat().st_mtime_ns
    lines = run(path, sets + ["ramp.per_passage=2"])
    assert [line.split(": ")[1] for line in lines] == ["complete, skipped"] * 3 + ["config changed",
                                                                                   "an earlier stage ran"]
    assert (root / "world" / "passages.jsonl").stat().st_mtime_ns == world
    again = run(path, sets + ["ramp.per_passage=2"], start="index")
    assert [line.split(": ")[1] for line in again] == ["complete, skipped"] * 2 + ["rerun from here (--from)"] + [
        "an earlier stage ran"] * 2


def test_a_killed_run_resumes_at_the_stage_it_was_in(recipe, monkeypatch):
    path, sets, root = recipe
    import minisearch.train.traj as traj

    real = traj.run

    def killed(cfg, echo=print):
        raise KeyboardInterrupt
    monkeypatch.setattr(traj, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        run(path, sets)
    assert (root / "ramp" / "done.json").is_file() and not (root / "traj" / "done.json").exists()
    ramp = (root / "ramp" / "train.jsonl").read_bytes()
    monkeypatch.setattr(traj, "run", real)
    lines = run(path, sets)
    assert [line.split(": ")[1] for line in lines] == ["complete, skipped"] * 4 + ["running"]
    assert (root / "ramp" / "train.jsonl").read_bytes() == ramp
    assert (root / "traj" / "done.json").is_file()


def test_a_moved_run_folder_is_complete_wherever_it_lies(recipe, tmp_path, monkeypatch):
    import json

    from minisearch.agent.chat import resolve

    path, sets, root = recipe
    monkeypatch.chdir(tmp_path)
    run(path, ["out=run"])  # a relative run folder, as `make demo` makes
    assert json.loads((root / "run.json").read_text())["index"] == "index"  # relative to the run folder
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    root.rename(moved)
    monkeypatch.chdir(moved.parent.parent.parent)  # another directory, the run named by an absolute path
    assert all(line.endswith("complete, skipped") for line in run(path, [f"out={moved}"]))
    assert resolve(str(moved), None, None)[0] == str(moved / "index")
    lines = run(path, [f"out={moved}", "ramp.per_passage=2"])  # a changed setting still counts
    assert [line.split(": ")[1] for line in lines] == ["complete, skipped"] * 3 + ["config changed",
                                                                                   "an earlier stage ran"]


def test_from_names_the_nearest_stage(recipe):
    path, sets, _ = recipe
    with pytest.raises(UserError, match="did you mean 'traj'"):
        run(path, sets, start="trajj")


def test_run_json_names_the_demo_s_final_adapter_and_its_passages_per_search(tmp_path):
    from minisearch.pipeline.recipe import read_recipe
    from minisearch.pipeline.runner import final_model
    from minisearch.pipeline.stages import plan

    root, stages = plan(read_recipe(RECIPES / "demo.yaml", [f"out={tmp_path}"]))
    made = final_model(stages)
    assert made["adapter"] == str(root / "qa-sft" / "adapter") and made["index"] == str(root / "index")
    assert made["topk"] == 1  # chat answers with the one passage per search the demo trained and scored with
    _, stages = plan(read_recipe(RECIPES / "demo.yaml", [f"out={tmp_path}", "eval.rollout.topk=2"]))
    assert final_model(stages)["topk"] == 2  # the eval stage, the last to say, decides
