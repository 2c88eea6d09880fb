"""One word per thing: a stage's recipe kind, its command and its module share a name, and a
renamed kind, command or setting keeps its old name only as an error that names the new one
(the search backend and the model backend were both `backend`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minisearch.cli.main import main
from minisearch.data.index import IndexConfig
from minisearch.errors import UserError
from minisearch.pipeline.recipe import build, read_recipe
from minisearch.pipeline.stages import KINDS, plan
from minisearch.train.sft import SftConfig
from minisearch.train.traj import TrajConfig


@pytest.mark.parametrize("cls, values, new", [
    (IndexConfig, {"source": "s"}, "search_backend"),
    (SftConfig, {"data": "d", "model": "m"}, "model_backend"),
    (TrajConfig, {"tasks": "t", "index": "i", "model": "m"}, "model_backend"),
])
def test_the_old_backend_key_names_the_new_one_of_its_config(cls, values, new):
    with pytest.raises(UserError, match=f"stages.x: 'backend' is now '{new}'"):
        build(cls, {**values, "backend": "gpu"}, "stages.x", fixed={"out": "o"})


@pytest.mark.parametrize("args, new", [
    (["index", "build", "src", "--backend", "bm25s"], "--search-backend"),
    (["sft", "data", "--model", "m", "--out", "o", "--backend", "gpu"], "--model-backend"),
    (["chat", "--run", "r", "--backend", "gpu"], "--model-backend"),
])
def test_the_old_backend_flag_names_the_new_one(args, new):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and f"--backend is now {new}" in result.output


@pytest.mark.parametrize("kind", KINDS)
def test_each_stage_kind_is_a_command_and_names_its_module(kind):
    words = ["index", "build"] if kind == "index" else [kind]  # index's group holds search and info too
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0 and result.output.startswith(f"Usage: main {' '.join(words)} ")
    assert CliRunner().invoke(main, [kind, "--help"]).exit_code == 0
    assert kind in KINDS[kind][0].split(".")  # minisearch.data.toyworld, minisearch.tiny.init, ...


@pytest.mark.parametrize("old, new", [("init", "init"), ("get", "pretrained"), ("warmup", "warmup")])
def test_an_old_command_prints_the_new_one_and_fails(old, new):
    result = CliRunner().invoke(main, ["model", old, "--out", "x"])
    assert result.exit_code == 2 and f"`minisearch model {old}` is now `minisearch {new}`" in result.output


def test_an_old_kind_names_the_new_one(tmp_path):
    (tmp_path / "r.yaml").write_text("stages:\n  world: {size: 100}\n")
    with pytest.raises(UserError, match="stage 'world': kind 'world' is now 'toyworld'.*kind: toyworld"):
        plan(read_recipe(tmp_path / "r.yaml"))
