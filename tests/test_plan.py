"""`minisearch run RECIPE --plan`: the stage table, the recipes' budgets, the CPU estimate against a
measured demo (the preflight that checks a machine against it: tests/test_preflight.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import RECIPES, ROOT

from minisearch.cli import main
from minisearch.errors import UserError
from minisearch.pipeline.plan import plan_recipe
from minisearch.pipeline.sizes import model_params

MEASURED = json.loads((ROOT / "bench" / "results" / "demo-cpu.json").read_text())


def hours(recipe, hardware, *sets):
    costs, text = plan_recipe(str(RECIPES / recipe), list(sets), hardware)
    total = float(text.rsplit("total: ", 1)[1].split()[0])
    return costs, text, total


def test_the_cpu_estimate_of_the_demo_is_within_35_percent_of_its_measured_stage_times():
    costs, _, _ = hours("demo.yaml", "cpu")
    measured = MEASURED["stage_seconds"]
    assert [c.stage for c in costs] == list(measured)
    for c in costs:
        if measured[c.stage] >= 30:  # the stages that make the demo's time
            assert abs(c.seconds - measured[c.stage]) <= 0.35 * measured[c.stage], (c.stage, c.seconds)
    total = sum(c.seconds for c in costs)
    assert abs(total - MEASURED["total_seconds"]) <= 0.35 * MEASURED["total_seconds"], total


@pytest.mark.parametrize("recipe, hardware, budget", [("qwen1.5b.yaml", "rtx4090", 10.0),
                                                      ("qwen1.5b-12gb.yaml", "rtx3060-12gb", 16.0),
                                                      ("qwen3-1.7b.yaml", "rtx4090", 10.0)])
def test_the_gpu_recipes_fit_a_night(recipe, hardware, budget):
    costs, text, total = hours(recipe, hardware)
    assert 1.0 < total <= budget, text
    vram = {"rtx4090": 24, "rtx3060-12gb": 12}[hardware]
    assert max(c.vram_gb for c in costs) <= vram, text
    assert all(c.note == "" for c in costs), text  # no unbounded stage


# The profile each shipped recipe is written for; a new recipe must be added here.
PROFILE = {"demo.yaml": "cpu", "smollm2-cpu.yaml": "cpu", "qwen1.5b.yaml": "rtx4090", "qwen1.5b-quick.yaml": "rtx4090",
           "qwen1.5b-12gb.yaml": "rtx3060-12gb", "qwen3-1.7b.yaml": "rtx4090"}


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_every_shipped_recipe_plans_on_its_profile(recipe):
    """Each stage has a line and a bound, the total is positive, and the largest stage fits the card."""
    assert recipe in PROFILE, f"name the hardware profile {recipe} is written for in PROFILE"
    costs, text, total = hours(recipe, PROFILE[recipe])
    assert total > 0 and all(c.note == "" for c in costs), text
    lines = text.splitlines()
    assert all(any(line.startswith(c.stage + " ") for line in lines) for c in costs), text
    vram = {"cpu": 0, "rtx4090": 24, "rtx3060-12gb": 12}[PROFILE[recipe]]
    assert max(c.vram_gb for c in costs) <= vram, text


def test_the_quick_recipe_takes_about_an_hour():
    _, text, total = hours("qwen1.5b-quick.yaml", "rtx4090")
    assert 0.5 <= total <= 1.5, text


def test_the_real_model_recipe_plans_its_model_before_it_exists():
    """smollm2-cpu.yaml's model is written by its first stage: the plan takes its size from the
    registry entry, and the whole recipe fits the two hours it is meant for on 2 cores."""
    costs, text, total = hours("smollm2-cpu.yaml", "cpu")
    assert costs[0].kind == "pretrained" and costs[0].work["parameters"] == 134_515_008
    assert next(c for c in costs if c.stage == "sft").work["steps"] == 100
    assert 0.5 <= total <= 2.0, text


def test_the_table_names_every_stage_and_its_work():
    costs, text, _ = hours("qwen1.5b.yaml", "rtx4090")
    lines = text.splitlines()
    assert lines[0].startswith("plan on rtx4090") and lines[-1].startswith("total: ")
    for c in costs:
        assert any(line.startswith(c.stage + " ") for line in lines)
    ramp = next(c for c in costs if c.kind == "ramp")
    assert ramp.work["passages"] < 1e6 and ramp.work["searches"] > 0  # a sample, not 21M passages
    dapo = next(c for c in costs if c.stage == "dapo")
    assert {"rollouts", "tokens_generated", "tokens_trained", "searches"} <= set(dapo.work)


def test_an_unbounded_ramp_is_flagged(tmp_path):
    _, text, total = hours("qwen1.5b.yaml", "rtx4090", "ramp.passages=null")
    assert "set ramp.passages" in text and total > 50


def test_cli_plan_and_bad_profile():
    r = CliRunner().invoke(main, ["run", str(RECIPES / "qwen1.5b.yaml"), "--plan", "--hardware", "rtx4090"])
    assert r.exit_code == 0 and "total: " in r.output and "corpus" in r.output, r.output
    r = CliRunner().invoke(main, ["run", str(RECIPES / "demo.yaml"), "--plan", "--hardware", "tpu9"])
    assert r.exit_code == 2 and "rtx4090" in r.output and "cpu" in r.output


def test_model_sizes():
    assert model_params("Qwen/Qwen2.5-1.5B-Instruct") == 1.5e9
    assert model_params("Qwen/Qwen3-1.7B") == 1.7e9
    assert model_params("HuggingFaceTB/SmolLM2-135M-Instruct") == 1.35e8
    with pytest.raises(UserError, match="config.json"):
        model_params("my-model")
