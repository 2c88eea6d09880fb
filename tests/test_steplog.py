"""Live metrics: every stage's per-step log reaches TensorBoard's event files under the run folder
(read back with TensorBoard's own event reader) with the values of metrics.jsonl, a resumed stage
logs each step once, and a tracker asked for but not installed stops the run before any stage."""

import json

import pytest
from click.testing import CliRunner
from helpers import small_recipe
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # the dev extra's

from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl
from minisearch.steplog import StepLog, installed, place, reporting, trackers


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the event files in `folder`, by tag, as (step, value)."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_stage_s_scalars_are_in_the_run_s_event_files(finished_run):
    board = finished_run / "tensorboard"
    assert sorted(p.name for p in board.iterdir()) == ["dapo", "eval", "sft", "warmup"]
    warm, sft, dapo, ev = (scalars(board / name) for name in ("warmup", "sft", "dapo", "eval"))
    assert {"train/loss", "train/lr"} <= set(warm)
    assert {"train/loss", "train/token_acc", "train/lr", "heldout/span_acc", "heldout/format_ok"} <= set(sft)
    assert {"train/reward", "train/format", "train/answer", "train/kept", "train/kept_fraction", "train/entropy",
            "train/model_tokens", "train/searches", "train/k", "heldout/span_acc"} <= set(dapo)
    assert {"eval/base/ramp-dev/span_acc", "eval/ramp-dapo/toy-qa/em", "eval/ramp-sft/toy-qa/recall"} <= set(ev)
    # metrics.jsonl stays the source of truth: the curves are its numbers, step by step
    for name, series, key in (("warmup", warm, "loss"), ("sft", sft, "loss"), ("dapo", dapo, "reward"),
                              ("sft", sft, "lr")):
        rows = list(read_jsonl(finished_run / name / "metrics.jsonl"))
        assert [s for s, _ in series[f"train/{key}"]] == [r["step"] for r in rows]
        assert [v for _, v in series[f"train/{key}"]] == pytest.approx([r[key] for r in rows], rel=1e-5)
    done = json.loads((finished_run / "sft" / "done.json").read_text())["counts"]
    assert sft["heldout/span_acc"] == [(0, pytest.approx(done["eval_before"]["span_acc"])),
                                       (done["steps"], pytest.approx(done["eval_after"]["span_acc"]))]


def test_a_resumed_log_keeps_each_step_once(tmp_path):
    out, tmp = tmp_path / "run" / "dapo", tmp_path / "run" / "dapo.tmp"
    tmp.mkdir(parents=True)
    with reporting(tmp_path / "run", ["tensorboard"]):
        with StepLog(out, tmp) as log:
            for step in range(1, 5):
                log.row({"step": step, "reward": float(step)})
        with StepLog(out, tmp, start=2) as log:  # killed after step 4, resumed from the checkpoint of step 2
            log.scalars({"heldout/span_acc": 0.5}, 0)  # logged before the stop: not again
            for step in range(3, 6):
                log.row({"step": step, "reward": 10.0 * step})
    assert [r["step"] for r in read_jsonl(tmp / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert scalars(tmp_path / "run" / "tensorboard" / "dapo")["train/reward"] == [
        (1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]
    with reporting(tmp_path / "run", ["tensorboard"]), StepLog(out, tmp) as log:  # the stage starts over
        log.row({"step": 1, "reward": 7.0})
    assert scalars(tmp_path / "run" / "tensorboard" / "dapo")["train/reward"] == [(1, 7.0)]


def test_a_stage_inside_a_stage_is_placed_by_its_path_in_the_run(tmp_path):
    with reporting(tmp_path, []):
        assert place(tmp_path / "traj.tmp" / "student-1" / "sft") == (tmp_path, "traj/student-1/sft")
        assert place(tmp_path / "qa-sft") == (tmp_path, "qa-sft")
    assert place(tmp_path / "x" / "sft") == (tmp_path / "x", "sft")  # a stage run by hand: its parent


def test_the_choice_of_trackers_is_checked():
    assert trackers(None) == ["tensorboard"]  # the default, with tensorboard installed
    assert trackers("none") == [] == trackers([])
    assert trackers("tensorboard, tensorboard") == ["tensorboard"]
    with pytest.raises(UserError, match="unknown tracker 'tensorbord'; valid: tensorboard, wandb, trackio"):
        trackers(["tensorbord"])
    with pytest.raises(UserError, match="takes a list of tracker names"):
        trackers({"tensorboard": 1})


@pytest.mark.skipif(installed("wandb"), reason="wandb is installed here: its absence cannot be shown")
def test_wandb_asked_for_and_absent_stops_the_run_before_any_stage(tmp_path, tiny_model):
    from minisearch.cli import main

    recipe = small_recipe(tmp_path, tiny_model)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(recipe), "--set", f"out={out}", "--report-to", "tensorboard,wandb"])
    assert result.exit_code == 2, result.output
    assert "report_to asks for wandb, which is not installed: pip install wandb" in result.output
    assert not out.exists()  # no stage ran, not even the world
    recipe.write_text(recipe.read_text() + "report_to: [wandb]\n")  # the recipe's own key, the same check
    with pytest.raises(UserError, match=f"{recipe}: report_to asks for wandb"):
        from minisearch.pipeline.runner import run_recipe

        run_recipe(str(recipe), [f"out={out}"])
    assert not out.exists()
