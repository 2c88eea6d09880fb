"""Does RAMP pre-training lift downstream QA? The demo's loop, with and without it, over seeds.

    python bench/transfer.py                     # make transfer: seeds 0-4, 100/300/1000/all questions (~50 min)
    python bench/transfer.py --seeds 0 --sizes 100 300

For each seed it runs `recipes/demo.yaml` (its own world, tokenizer, model and data order) up
to RAMP DAPO, then, at each downstream size N (the first N training questions the scripted
teacher answers), QA SFT twice with the same settings: from the RAMP-trained adapter (RAMP ->
QA) and from a fresh adapter on the warmed-up model (QA alone). Each trains one epoch or
MIN_STEPS steps, whichever is more, so the smallest sizes are not starved of updates. The
curriculum ablation trains a second DAPO from the same SFT adapter, all mask counts mixed,
for the same steps, scored on held-out RAMP tasks and followed by QA SFT at MIXED_SIZE.

Every run is a recipe under OUT (seed-N.yaml, run folder seed-N/), so a rerun skips what is
done and a killed one resumes. The table (mean ± sample standard deviation over seeds, and
the per-seed gain) is printed and written to OUT/table.md and OUT/results.json from the eval
stages' metrics and samples; bridge questions are scored apart.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MIN_STEPS = 100
BATCH = 8
MIXED_SIZE = 300
PRETRAIN = ("world", "corpus", "index", "init", "warmup", "ramp", "traj", "sft", "dapo")


def sft_steps(size: int | None) -> dict:
    """One epoch or MIN_STEPS optimiser steps, whichever is more ("all": one epoch)."""
    if size is None or size > MIN_STEPS * BATCH:
        return {"epochs": 1.0}
    return {"max_steps": MIN_STEPS}


def seed_recipe(demo: dict, seed: int, sizes: list[int | None], out: Path, eval_limit: int) -> dict:
    """The demo's stages to RAMP DAPO, then the mixed DAPO, the QA SFT pairs and two evals."""
    stages = demo["stages"]
    recipe = {"name": f"transfer-seed-{seed}", "out": str(out / f"seed-{seed}"), "seed": seed,
              "stages": {name: copy.deepcopy(stages[name]) for name in PRETRAIN}}
    add = recipe["stages"]
    add["dapo-mixed"] = {**copy.deepcopy(stages["dapo"]), "kind": "dapo", "curriculum": "mixed"}
    qa_models = {}
    for size in sizes:
        tag = "all" if size is None else str(size)
        traj = {**copy.deepcopy(stages["qa-traj"]), "kind": "traj", "limit": size}
        add[f"qa-traj-{tag}"] = traj
        starts = {"ramp": "dapo/adapter", "alone": None}
        if size == MIXED_SIZE:
            starts["mixed"] = "dapo-mixed/adapter"
        for start, adapter in starts.items():
            run = {**copy.deepcopy(stages["qa-sft"]), "kind": "sft", "data": f"qa-traj-{tag}", "adapter": adapter}
            run.pop("epochs", None)
            run.pop("max_steps", None)
            add[f"qa-{tag}-{start}"] = {**run, **sft_steps(size)}
            qa_models[f"qa-{tag}-{start}"] = f"qa-{tag}-{start}/adapter"
    common = {"kind": "eval", "model": "warmup", "index": "index", "limit": eval_limit, "baselines": [],
              "rollout": copy.deepcopy(stages["eval"].get("rollout", {}))}
    add["eval-ramp"] = {**common, "sets": {"ramp-dev": "ramp/dev.jsonl"},
                        "models": {"ramp-sft": "sft/adapter", "ramp-dapo": "dapo/adapter",
                                   "ramp-dapo-mixed": "dapo-mixed/adapter"}}
    add["eval-qa"] = {**common, "sets": {"toy-qa-dev": "world/qa/dev.jsonl"}, "models": qa_models}
    return recipe


def cell_scores(run: Path) -> dict[str, dict[str, float]]:
    """{model: {"all": exact, "bridge": EM on bridge questions, "n_bridge": count}} from the evals."""
    out: dict[str, dict[str, float]] = {}
    for row in json.loads((run / "eval-ramp" / "metrics.json").read_text())["rows"]:
        out[row["model"]] = {"all": row["span_acc"]}
    types = {}
    for line in (run / "world" / "qa" / "dev.jsonl").open():
        task = json.loads(line)
        types[task["id"]] = task["metadata"]["type"]
    samples: dict[str, list[dict]] = {}
    for line in (run / "eval-qa" / "samples.jsonl").open():
        s = json.loads(line)
        samples.setdefault(s["model"], []).append(s)
    for model, rows in samples.items():
        bridge = [s["em"] for s in rows if types[s["task_id"]] == "bridge"]
        out[model] = {"all": sum(s["em"] for s in rows) / len(rows),
                      "bridge": sum(bridge) / len(bridge) if bridge else float("nan"), "n_bridge": len(bridge)}
    return out


def spread(values: list[float]) -> str:
    """mean ± sample standard deviation (± 0 for one value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(scores: dict[int, dict], sizes: list[int | None], eval_limit: int) -> str:
    seeds = sorted(scores)

    def col(model, part="all"):
        return [scores[s][model][part] for s in seeds]

    def gain(a, b, part="all"):
        return [x - y for x, y in zip(col(a, part), col(b, part))]

    lines = [f"Seeds {', '.join(map(str, seeds))}; first {eval_limit} held-out tasks per set, greedy; mean ± sd "
             "over seeds; gain = per-seed difference.", "",
             "| downstream QA | QA alone EM | RAMP -> QA EM | gain | bridge: QA alone | bridge: RAMP -> QA |",
             "|---|---|---|---|---|---|"]
    for size in sizes:
        tag = "all" if size is None else str(size)
        a, r = f"qa-{tag}-alone", f"qa-{tag}-ramp"
        label = "all questions" if size is None else f"{size} questions"
        lines.append(f"| {label} | {spread(col(a))} | {spread(col(r))} | {spread(gain(r, a))} | "
                     f"{spread(col(a, 'bridge'))} | {spread(col(r, 'bridge'))} |")
    lines += ["", "| RAMP DAPO, equal steps | ramp-dev span accuracy | "
              f"QA EM after QA SFT on {MIXED_SIZE} |", "|---|---|---|",
              f"| after RAMP SFT (no DAPO) | {spread(col('ramp-sft'))} | - |",
              f"| curriculum (1 mask first, then more) | {spread(col('ramp-dapo'))} | "
              f"{spread(col(f'qa-{MIXED_SIZE}-ramp')) if MIXED_SIZE in sizes else '-'} |",
              f"| mixed (all mask counts at once) | {spread(col('ramp-dapo-mixed'))} | "
              f"{spread(col(f'qa-{MIXED_SIZE}-mixed')) if MIXED_SIZE in sizes else '-'} |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"],
                    help="Downstream training questions per run ('all': every training question).")
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "demo.yaml"))
    ap.add_argument("--out", default="runs/transfer")
    ap.add_argument("--eval-limit", type=int, default=100, help="Held-out tasks per set.")
    args = ap.parse_args()
    sizes = [None if s == "all" else int(s) for s in args.sizes]
    demo = yaml.safe_load(Path(args.recipe).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for seed in args.seeds:
        path = out / f"seed-{seed}.yaml"
        path.write_text(yaml.safe_dump(seed_recipe(demo, seed, sizes, out, args.eval_limit), sort_keys=False))
        print(f"== seed {seed}: minisearch run {path}", flush=True)
        done = subprocess.run([sys.executable, "-m", "minisearch.cli", "run", str(path)], cwd=Path.cwd())
        if done.returncode:
            sys.exit(f"seed {seed}: the run failed (exit {done.returncode}); rerun the same command to resume")
        scores[seed] = cell_scores(out / f"seed-{seed}")
    text = table(scores, sizes, args.eval_limit)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({
        "what": "python bench/transfer.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(), "sizes": args.sizes,
        "eval_limit": args.eval_limit, "scores": scores}, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
