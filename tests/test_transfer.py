"""bench/transfer.py, the RAMP -> QA experiment: its recipes are valid and fair, its table reads
the eval stages right (bridge questions apart, spread over seeds)."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import yaml
from helpers import RECIPES, ROOT

from minisearch.pipeline.plan import plan_recipe


@pytest.fixture(scope="module")
def transfer():
    spec = importlib.util.spec_from_file_location("transfer", ROOT / "bench" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_seed_is_a_valid_recipe_whose_two_arms_differ_only_in_their_start(transfer, tmp_path):
    demo = yaml.safe_load((RECIPES / "demo.yaml").read_text())
    recipe = transfer.seed_recipe(demo, 4, [100, 300, None], tmp_path, eval_limit=20)
    path = tmp_path / "seed-4.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    costs, _ = plan_recipe(str(path), [], "cpu")  # strict keys, kinds and paths, as `minisearch run` reads them
    stages = recipe["stages"]
    assert [c.stage for c in costs] == list(stages) and recipe["seed"] == 4
    for tag in ("100", "300", "all"):
        ramp, alone = dict(stages[f"qa-{tag}-ramp"]), dict(stages[f"qa-{tag}-alone"])
        assert ramp.pop("adapter") == "dapo/adapter" and alone.pop("adapter") is None
        assert ramp == alone and ramp["data"] == f"qa-traj-{tag}"
    assert stages["qa-traj-100"]["limit"] == 100 and stages["qa-traj-all"]["limit"] is None
    assert stages["qa-100-ramp"]["max_steps"] == stages["qa-300-ramp"]["max_steps"] == transfer.MIN_STEPS
    assert stages["qa-all-ramp"]["epochs"] == 1.0 and "max_steps" not in stages["qa-all-ramp"]
    mixed = dict(stages["dapo-mixed"])
    assert mixed.pop("curriculum") == "mixed" and mixed.pop("kind") == "dapo"
    assert mixed == stages["dapo"]  # the same steps, adapter and settings: only the order of mask counts differs
    assert stages["qa-300-mixed"]["adapter"] == "dapo-mixed/adapter"
    assert set(stages["eval-qa"]["models"]) == {f"qa-{t}-{s}" for t in ("100", "300", "all") for s in ("ramp", "alone")
                                                 } | {"qa-300-mixed"}


def write_run(root, em: dict[str, list[int]], span: dict[str, float], types: list[str]):
    """A run folder with the files cell_scores reads: dev questions, eval-qa samples, eval-ramp rows."""
    (root / "world" / "qa").mkdir(parents=True)
    (root / "world" / "qa" / "dev.jsonl").write_text("".join(
        json.dumps({"id": f"dev-{i}", "metadata": {"type": t}}) + "\n" for i, t in enumerate(types)))
    (root / "eval-qa").mkdir()
    (root / "eval-qa" / "samples.jsonl").write_text("".join(
        json.dumps({"model": m, "task_id": f"dev-{i}", "em": float(v)}) + "\n" for m, vs in em.items()
        for i, v in enumerate(vs)))
    (root / "eval-ramp").mkdir()
    (root / "eval-ramp" / "metrics.json").write_text(json.dumps({"rows": [
        {"model": m, "set": "ramp-dev", "span_acc": v} for m, v in span.items()]}))


def test_scores_and_table_from_the_eval_stages(transfer, tmp_path):
    types = ["one-hop", "bridge", "one-hop", "bridge"]
    span = {"ramp-sft": 0.2, "ramp-dapo": 0.3, "ramp-dapo-mixed": 0.1}
    for seed, (ramp, alone) in enumerate([([1, 1, 1, 0], [0, 0, 1, 0]), ([1, 0, 0, 0], [0, 0, 0, 0])]):
        write_run(tmp_path / f"seed-{seed}", {"qa-100-ramp": ramp, "qa-100-alone": alone}, span, types)
    scores = {s: transfer.cell_scores(tmp_path / f"seed-{s}") for s in (0, 1)}
    assert scores[0]["qa-100-ramp"] == {"all": 0.75, "bridge": 0.5, "n_bridge": 2}
    assert scores[1]["qa-100-alone"]["all"] == 0.0 and scores[0]["ramp-dapo"]["all"] == 0.3
    text = transfer.table(scores, [100], eval_limit=4)
    row = next(line for line in text.splitlines() if line.startswith("| 100 questions"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    # QA alone 0.25, 0; RAMP -> QA 0.75, 0.25; gains 0.5, 0.25; bridge 0, 0 and 0.5, 0
    assert cells[:3] == ["0.125 ± 0.177", "0.500 ± 0.354", "0.375 ± 0.177"]
    assert cells[3:] == ["0.000 ± 0.000", "0.250 ± 0.354"]
    assert "| curriculum (1 mask first, then more) | 0.300 ± 0.000 | - |" in text


def test_spread_of_one_seed_and_no_bridge_question(transfer, tmp_path):
    assert transfer.spread([0.5]) == "0.500 ± 0.000"
    write_run(tmp_path, {"qa-100-ramp": [1, 0]}, {}, ["one-hop", "one-hop"])
    assert math.isnan(transfer.cell_scores(tmp_path)["qa-100-ramp"]["bridge"])
