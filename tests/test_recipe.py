"""Recipes: strict keys with the nearest valid one named, --set overrides, typed values, paths."""

import textwrap

import pytest
from helpers import RECIPES

from minisearch.agent.rollout import RolloutConfig
from minisearch.errors import UserError
from minisearch.eval.stage import EvalConfig
from minisearch.pipeline.recipe import apply_set, build, coerce, read_recipe
from minisearch.pipeline.stages import plan
from minisearch.train.sft import SftConfig


def write(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASIC = """
    name: t
    stages:
      world: {kind: toyworld, size: 100}
      corpus: {source: world/passages.jsonl}
      sft: {data: corpus, model: some/model, lr: 5e-3}
"""


def test_paths_resolve_into_earlier_stages_and_types_are_coerced(tmp_path):
    recipe = read_recipe(write(tmp_path, BASIC), [f"out={tmp_path / 'run'}"])
    root, stages = plan(recipe)
    assert [s.name for s in stages] == ["world", "corpus", "sft"]
    corpus, sft = stages[1].cfg, stages[2].cfg
    assert corpus.source == str(root / "world" / "passages.jsonl") and corpus.out == str(root / "corpus")
    assert sft.data == str(root / "corpus") and sft.model == "some/model"  # not a stage: left as is
    listed = plan(read_recipe(write(tmp_path, BASIC), [f"out={tmp_path / 'run'}", "sft.data=[corpus, world]"]))
    assert listed[1][2].cfg.data == [str(root / "corpus"), str(root / "world")]  # each source resolves
    assert sft.lr == 0.005 and isinstance(sft.lr, float)  # YAML reads 5e-3 as a string
    assert stages[0].cfg.seed == 0


@pytest.mark.parametrize("text, message", [
    ("stages:\n  sft: {data: x, model: y, learning_rate: 1}\n", "'learning_rate' is not a setting of this stage"),
    ("stages:\n  sft: {data: x, model: y, lrr: 1}\n", "did you mean 'lr'?"),
    ("stages:\n  sft: {data: x, model: y, rollout: {topkk: 2}}\n", "stages.sft.rollout: 'topkk'"),
    ("stages:\n  sft: {data: x, model: y, out: elsewhere}\n", "'out' is set by the runner"),
    ("stages:\n  sft: {model: y}\n", "missing required key(s) data"),
    ("stages:\n  sft: {data: x, model: y, epochs: many}\n", "stages.sft.epochs takes a float, got 'many'"),
    ("stages:\n  sft: {data: x, model: {a: 1}}\n", "stages.sft.model takes a str, got {'a': 1}"),
    ("stages:\n  sft: {data: {a: 1}, model: y}\n", "stages.sft.data takes a str or list, got {'a': 1}"),
    ("stages:\n  ramp: {corpus: c, k_weights: 0.5}\n", "stages.ramp.k_weights takes a list, got 0.5"),
    ("stages:\n  eval: {model: m, index: i, sets: ramp/dev.jsonl}\n", "stages.eval.sets takes a map"),
    ("stages:\n  sftt: {data: x}\n", "unknown kind 'sftt' (did you mean 'sft'?)"),
    ("stagez:\n  sft: {}\n", "non-empty `stages:` map"),
    ("stages:\n  sft: {data: x, model: y}\nseeed: 1\n", "did you mean 'seed'?"),
])
def test_bad_recipes_say_what_and_where(tmp_path, text, message):
    with pytest.raises(UserError) as e:
        plan(read_recipe(write(tmp_path, text)))
    assert message in str(e.value)


def test_set_overrides_nested_keys_and_names_unknown_stages():
    recipe = {"stages": {"sft": {"lr": 1.0}}}
    apply_set(recipe, "sft.lr=2e-4")
    apply_set(recipe, "sft.rollout.topk=5")
    apply_set(recipe, "seed=3")
    assert recipe == {"stages": {"sft": {"lr": "2e-4", "rollout": {"topk": 5}}}, "seed": 3}
    with pytest.raises(UserError, match="no stage 'sftt'.*did you mean 'sft'"):
        apply_set(recipe, "sftt.lr=1")
    with pytest.raises(UserError, match="key=value"):
        apply_set(recipe, "sft.lr")


def test_build_and_coerce_edge_cases():
    cfg = build(SftConfig, {"data": "d", "model": "m", "epochs": 3, "max_steps": "20"}, "sft", {"out": "o"})
    assert cfg.epochs == 3.0 and cfg.max_steps == 20
    assert coerce(7, str | list[str], "x") == "7" and coerce(["a", "b"], str | list[str], "x") == ["a", "b"]
    with pytest.raises(UserError, match="takes a int"):
        coerce(2.5, int, "x")
    with pytest.raises(UserError, match="takes a bool"):
        coerce("yes", bool, "x")


def test_a_nested_map_changes_only_its_keys_of_the_stage_default():
    """eval's rollout is greedy by default; a recipe that sets its top-k must not bring back sampling."""
    sets = {"dev": "dev.jsonl"}
    cfg = build(EvalConfig, {"model": "m", "index": "i", "sets": sets, "rollout": {"topk": 1}}, "eval", {"out": "o"})
    assert cfg.rollout.topk == 1 and cfg.rollout.temperature == 0.0
    assert build(EvalConfig, {"model": "m", "index": "i", "sets": sets}, "eval",
                 {"out": "o"}).rollout.temperature == 0.0
    assert build(SftConfig, {"data": "d", "model": "m", "rollout": {"max_turns": 2}}, "sft",
                 {"out": "o"}).rollout == RolloutConfig(temperature=0.0, max_turns=2)


def test_missing_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="recipes/"):
        read_recipe(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        read_recipe(write(tmp_path, "stages: [a\n"))


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_plans_cleanly(recipe):
    root, stages = plan(read_recipe(recipe))
    assert stages[-1].kind == "eval" and root.name == recipe.stem
