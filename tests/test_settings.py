"""One source for settings: each command's flags are its config's fields, with the config's
defaults and checks, and a recipe's bad value fails before any stage runs."""

from __future__ import annotations

import dataclasses
import importlib

import click
import pytest
from click.testing import CliRunner

from minisearch.agent.chat import ChatConfig
from minisearch.cli import main
from minisearch.cli.options import flag_names, leaves, settings_from, settings_options
from minisearch.errors import UserError
from minisearch.eval.stage import EvalConfig
from minisearch.export.verl_data import ExportConfig
from minisearch.pipeline.runner import run_recipe
from minisearch.pipeline.stages import KINDS
from minisearch.ramp.tasks import RampConfig
from minisearch.search.server import Limits
from minisearch.settings import SettingError, path_fields
from minisearch.train.dapo import DapoConfig
from minisearch.train.rewards import RewardConfig
from minisearch.train.sft import SftConfig
from minisearch.train.traj import TrajConfig

CONFIGS = [getattr(importlib.import_module(module), name) for module, name in KINDS.values()]
CONFIGS += [ChatConfig, ExportConfig, Limits]


def parse(cls, args: list[str]):
    """The config a command made from `cls`'s options builds from `args`."""
    seen = []

    @click.command()
    @settings_options(cls)
    def command(**options):
        seen.append(settings_from(cls, options))

    result = CliRunner().invoke(command, args, standalone_mode=False, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen[0]


def required_args(cls) -> tuple[list[str], dict]:
    """Command-line arguments for the required fields of `cls`, and the same as config values."""
    args, values = [], {}
    names = flag_names(leaves(cls))
    for leaf in leaves(cls):
        f = leaf.field
        if len(leaf.path) > 1 or f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        value = f"{f.name}-value"
        args += [value] if f.metadata.get("arg") else [names[leaf.dest], value]
        values[f.name] = value
    return args, values


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_a_command_left_to_its_defaults_builds_the_configs_defaults(cls):
    args, values = required_args(cls)
    if cls.__name__ == "EvalConfig":  # an eval without a set to score is refused (tested below)
        args, values = args + ["--set", "dev=dev.jsonl"], {**values, "sets": {"dev": "dev.jsonl"}}
    if cls.__name__ == "PretrainedConfig":  # the model's name is one of a registry's
        args, values = ["smollm2" if a == "name-value" else a for a in args], {**values, "name": "smollm2"}
    assert parse(cls, args) == cls(**values)


def test_ramp_help_offers_every_field_with_its_default():
    out = CliRunner().invoke(main, ["ramp", "--help"], terminal_width=200).output
    for f in dataclasses.fields(RampConfig):
        if not f.metadata["arg"]:
            assert "--" + f.name.replace("_", "-") in out, f.name
    assert "[default: 0.4,0.3,0.2,0.1]" in out and "[span|title|plan]" in out


def test_every_stage_command_offers_every_field():
    for command, cls in (("ramp", RampConfig), ("traj", TrajConfig), ("sft", SftConfig), ("dapo", DapoConfig)):
        out = CliRunner().invoke(main, [command, "--help"]).output
        for leaf, flag in zip(leaves(cls), flag_names(leaves(cls)).values()):
            if not leaf.field.metadata["arg"] and leaf.path != ("rollout", "group"):
                assert flag in out, (command, flag)


def test_nested_fields_keep_their_names_unless_they_clash():
    names = flag_names(leaves(DapoConfig))
    assert names["rollout__max_turns"] == "--max-turns" and names["reward__answer"] == "--answer"
    assert names["group"] == "--group" and names["rollout__group"] == "--rollout-group"
    cfg = parse(DapoConfig, ["t", "--index", "i", "--model", "m", "--out", "o", "--max-turns", "2", "--answer",
                             "f1", "--lr", "1e-3", "--no-grad-checkpoint"])
    assert cfg.rollout.max_turns == 2 and cfg.reward.answer == "f1" and cfg.lr == 1e-3 and not cfg.grad_checkpoint
    assert cfg.rollout.temperature == 1.0 and cfg.reward.format_weight == 0.1  # untouched nested defaults stay


def test_lists_maps_and_positional_lists():
    cfg = parse(RampConfig, ["c", "--out", "o", "--k-weights", "1,0,0,0"])
    assert cfg.k_weights == [1.0, 0.0, 0.0, 0.0]
    cfg = parse(EvalConfig, ["--model", "m", "--index", "i", "--out", "o", "--set", "a=a.jsonl", "--adapter",
                             "mine=dir", "--baselines", ""])
    assert cfg.sets == {"a": "a.jsonl"} and cfg.models == {"base": None, "mine": "dir"} and cfg.baselines == []
    assert parse(SftConfig, ["a", "b", "--model", "m", "--out", "o"]).data == ["a", "b"]
    assert parse(SftConfig, ["a", "--model", "m", "--out", "o"]).data == "a"


@pytest.mark.parametrize("args, message", [
    (["--recover", "titel"], "'titel' is not one of"),            # click's Choice, from the field's choices
    (["--k-weights", "1,2"], "k_weights must be four"),            # RampConfig.validate
    (["--k-weights", "1,x,0,0"], "comma-separated list of float"),
    (["--per-passage", "0"], "per_passage=0: it must be at least 1"),
])
def test_bad_values_on_the_command_line_are_clear_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["ramp", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_checks_live_in_the_config():
    with pytest.raises(SettingError, match="recover='titel' is not one of span, title, plan"):
        RampConfig(corpus="c", out="o", recover="titel")
    with pytest.raises(SettingError, match="group=1"):
        DapoConfig(tasks="t", index="i", model="m", out="o", group=1)
    with pytest.raises(SettingError, match="judge_model"):
        DapoConfig(tasks="t", index="i", model="m", out="o", reward=RewardConfig(answer="judge"))
    assert {"corpus", "index", "hard_model"} == path_fields(RampConfig)


def test_a_recipe_with_a_bad_value_fails_before_any_stage_runs(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"out: {tmp_path / 'run'}\nstages:\n  world: {{kind: toyworld, size: 50}}\n"
                      "  ramp: {corpus: world/passages.jsonl, recover: titel}\n")
    with pytest.raises(UserError, match=r"stages\.ramp: recover='titel' is not one of span, "
                                        r"title"):
        run_recipe(str(recipe), echo=lambda *_: None)
    assert not (tmp_path / "run" / "world").exists()  # the world stage, before it, never ran
    result = CliRunner().invoke(main, ["run", str(recipe)])
    assert result.exit_code == 2 and "recover='titel'" in result.output
