"""`minisearch run RECIPE`: the stages of a recipe, in order, each into its folder of the run.

    minisearch run recipes/demo.yaml
    minisearch run recipes/demo.yaml --set sft.lr=1e-3 --from sft

A stage is skipped when its folder is complete (`done.json`) with the same config; when one
runs, every later stage runs again too (its inputs changed). A killed run therefore resumes
at the stage it was in: sft, dapo and eval go on from their last checkpoint, the others
start that stage again; nothing completed is lost. Before the first stage, every stage's
needs (packages, models, QA sets, files: `pipeline.preflight.NEEDS`) are checked, and a run
that lacks any is refused with all of them named. `--from STAGE` reruns from there. At the
end the run folder holds `run.json` (the model, adapter and index that `minisearch chat
--run` uses, relative to the run folder), `times.json` (each stage's wall seconds),
`report.md`, and a model card (README.md) in every adapter folder, with the eval rows of
that adapter (minisearch.export.card). While it runs, each stage's per-step log goes to the
trackers of the recipe's `report_to`, checked before the first stage (minisearch.steplog;
TensorBoard by default: `tensorboard --logdir runs/NAME`). `--plan` prints what the stages
will do and cost, and runs nothing (minisearch.pipeline.plan). A run folder may be moved or
copied: its stages count as complete wherever it lies (`--set out=NEW_PLACE`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import yaml

from minisearch.errors import UserError, nearest
from minisearch.pipeline.preflight import check_needs
from minisearch.pipeline.recipe import read_recipe
from minisearch.pipeline.stages import Stage, plan, run_stages
from minisearch.rundir import is_complete, read_done, run_relative
from minisearch.steplog import reporting, trackers


def run_recipe(path: str, sets: list[str] = (), start: str | None = None, echo=print) -> Path:
    recipe = read_recipe(path, sets)
    root, stages = plan(recipe)
    names = [s.name for s in stages]
    if start is not None and start not in names:
        raise UserError(f"--from {start}: no such stage{nearest(start, names)}; stages: {', '.join(names)}")
    report_to = trackers(recipe.get("report_to"), f"{path}: report_to")
    check_needs(stages, path)  # every package, model, set and file the stages need, before the first one
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    if "tensorboard" in report_to:
        echo(f"live curves: tensorboard --logdir {root}")
    with reporting(root, report_to):
        times = _run_stages(stages, start, echo)
    _finish(root, stages, times, echo)
    return root


def _run_stages(stages: list[Stage], start: str | None, echo) -> dict[str, float]:
    """Each stage that is not complete (or comes at or after `start`); their wall seconds."""
    rerun, times = False, {}
    for i, stage in enumerate(stages, 1):
        rerun = rerun or stage.name == start
        done = read_done(stage.cfg.out) is not None
        fresh = is_complete(stage.cfg.out, dataclasses.asdict(stage.cfg))
        if fresh and not rerun:
            echo(f"[{i}/{len(stages)}] {stage.name}: complete, skipped")
            continue
        why = ("rerun from here (--from)" if stage.name == start else "config changed" if done and not fresh
               else "an earlier stage ran" if done else "running")
        echo(f"[{i}/{len(stages)}] {stage.name} ({stage.kind}): {why}")
        start_time = time.time()
        stage.module.run(stage.cfg, echo=echo)
        times[stage.name] = round(time.time() - start_time, 1)
        rerun = True
    return times


def _finish(root: Path, stages: list[Stage], times: dict, echo) -> None:
    """After the stages: times.json, run.json, the adapters' model cards, report.md."""
    from minisearch.eval.report import write_report
    from minisearch.export.card import write_cards

    if times:  # each stage's wall seconds, kept across reruns (bench/plan_check.py sets them beside the plan)
        known = json.loads((root / "times.json").read_text()) if (root / "times.json").is_file() else {}
        (root / "times.json").write_text(json.dumps({**known, **times}, indent=2) + "\n")
    # paths relative to the run folder, so it can move
    (root / "run.json").write_text(json.dumps(run_relative(final_model(stages), root), indent=2) + "\n")
    cards = write_cards(root, stages)
    report = write_report(root)
    echo(f"stage seconds: {json.dumps(times)}" if times else "every stage was complete already")
    if cards:
        echo(f"model cards: {', '.join(str(c) for c in cards)}")
    echo(f"report: {report}")


def final_model(stages: list[Stage]) -> dict:
    """The model, newest adapter, index and passages per search of the run, for `minisearch chat --run`."""
    out: dict = {}
    for s in stages:
        if s.kind in ("sft", "dapo"):
            out.update(model=s.cfg.model, adapter=str(Path(s.cfg.out) / "adapter"))
        if s.kind in ("dapo", "eval"):  # the agent answers best with the top-k it was trained and scored with
            out["topk"] = s.cfg.rollout.topk
        if s.kind == "warmup":
            out.setdefault("model", s.cfg.out)
        if s.kind == "index":
            out["index"] = s.cfg.out
    return out


def planned_model(root: str | Path) -> dict:
    """`final_model` of a run folder's recipe, for a run with no run.json yet (under way or
    killed): chat finds the model whatever the recipe named its stage (runs/demo/warmup). The
    adapter only once it is written; {} for a folder without a recipe."""
    root = Path(root)
    if not (root / "recipe.yaml").is_file():
        return {}
    out = final_model(run_stages(root))
    if "adapter" in out and not Path(out["adapter"]).is_dir():
        del out["adapter"]
    return out
