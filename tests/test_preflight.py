"""The preflight: every stage kind's needs are known, and a run that lacks any is refused before
its first stage with each missing piece named beside the command that provides it."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner
from helpers import RECIPES

from minisearch.cli import main
from minisearch.errors import UserError
from minisearch.needs import Need, unmet
from minisearch.pipeline.preflight import NEEDS, missing_needs, preflight
from minisearch.pipeline.recipe import read_recipe
from minisearch.pipeline.stages import KINDS, plan


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub and an empty QA-set cache: what a model id or a named set needs shows."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MINISEARCH_CACHE", str(tmp_path / "cache"))


def test_the_table_of_needs_covers_every_stage_kind_and_every_recipe_stage(tmp_path):
    """NEEDS has an entry for each kind the runner knows, and the recipes, which together use
    every kind, list their needs without error: each entry runs on a real config."""
    assert set(NEEDS) == set(KINDS)
    used = set()
    for recipe in sorted(RECIPES.glob("*.yaml")):
        _, stages = plan(read_recipe(str(recipe), [f"out={tmp_path / recipe.stem}"]))
        for stage in stages:
            needs = NEEDS[stage.kind](stage.cfg, f"stage {stage.name}")
            assert all(isinstance(n, Need) and n.why.startswith(f"stage {stage.name}") for n in needs)
            used.add(stage.kind)
    assert used == set(KINDS)


@pytest.mark.skipif(importlib.util.find_spec("fanoutqa") is not None,
                    reason="fanoutqa is installed (the hf extra): nothing would be missing")
def test_an_eval_set_whose_package_is_missing_is_refused_before_the_first_stage(offline, tmp_path):
    """The demo recipe with FanOutQA among its eval sets: `minisearch run` stops at once, naming
    the package and its install command; no stage ran, no run folder was made."""
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["run", str(RECIPES / "demo.yaml"), "--set", f"out={out}",
                                  "--set", "eval.sets.fo=fanoutqa"])
    assert r.exit_code == 2, r.output
    assert "preflight: this machine lacks" in r.output
    assert "the package fanoutqa (for stage eval, set fo): pip install -e '.[hf]'" in r.output
    assert "[1/" not in r.output and not out.exists()


def test_the_gpu_recipe_names_every_missing_piece_at_once(offline, tmp_path):
    """qwen1.5b.yaml with a FanOutQA set added, on a machine without the GPU stack: one refusal
    names the set's package, the gpu backend's packages, the GPU, and the hub models."""
    if importlib.util.find_spec("unsloth") is not None:
        pytest.skip("the gpu extra is installed")
    with pytest.raises(UserError) as refused:
        preflight(str(RECIPES / "qwen1.5b.yaml"), [f"out={tmp_path / 'run'}", "eval.sets.x=fanoutqa"])
    text = str(refused.value)
    assert text.startswith("preflight: this machine lacks")
    assert "the packages unsloth, unsloth_zoo, vllm, vllm_bnb_plugin, bitsandbytes, trl (for stage traj" in text
    assert "): make install-gpu" in text and "a CUDA GPU" in text
    assert "the model Qwen/Qwen2.5-7B-Instruct from the Hugging Face hub, which HF_HUB_OFFLINE" in text
    if importlib.util.find_spec("fanoutqa") is None:
        assert "the package fanoutqa (for stage eval, set fanoutqa; stage eval, set x)" in text
    assert not (tmp_path / "run").exists()
    preflight(str(RECIPES / "demo.yaml"), [f"out={tmp_path / 'demo'}"])  # a CPU recipe passes


def test_each_kind_of_need_is_checked(offline, tmp_path):
    """A package by its import name, a file on disk or written by an earlier stage, a model
    folder or a hub id (offline: missing), one line per missing thing with its fix."""
    (tmp_path / "here.jsonl").write_text("{}\n")
    made = tmp_path / "run" / "ramp"
    needs = [Need("package", "json", "a"), Need("package", "minisearch_no_such_package", "stage x", "pip install it"),
             Need("file", str(tmp_path / "here.jsonl"), "b"), Need("file", str(made / "train.jsonl"), "c"),
             Need("file", str(tmp_path / "gone.jsonl"), "stage y", "make it"),
             Need("model", str(tmp_path), "d"), Need("model", "Org/no-such-model", "stage z"),
             Need("model", str(tmp_path / "a" / "b"), "stage w")]
    lines = unmet(needs, made=lambda p: str(p).startswith(str(made)))
    assert lines[0] == "the package minisearch_no_such_package (for stage x): pip install it"
    assert lines[1] == f"{tmp_path / 'gone.jsonl'} (no such file or folder) (for stage y): make it"
    assert lines[2].startswith("the model Org/no-such-model from the Hugging Face hub, which HF_HUB_OFFLINE")
    assert "hf download Org/no-such-model" in lines[2]
    assert lines[3].startswith(f"a model at {tmp_path / 'a' / 'b'} (no such folder, and not a Hugging Face id)")
    assert len(lines) == 4


def test_a_stage_reading_what_an_earlier_one_writes_needs_nothing_yet(tmp_path):
    """The demo recipe's stages read one another's folders, none of which exists yet: no need is missing."""
    _, stages = plan(read_recipe(str(RECIPES / "demo.yaml"), [f"out={tmp_path / 'demo'}"]))
    assert missing_needs(stages) == []
