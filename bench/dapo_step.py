"""DAPO's time per step on the CPU, before and after: the `cpu-hf` backend (transformers'
`generate`, scoring in float32: how the cpu backend worked before its cached sampler and bf16
scoring) against the `cpu` backend, with a finished run's own dapo settings, in one process.

    python bench/dapo_step.py runs/demo --steps 12
    python bench/dapo_step.py runs/smollm2-cpu --steps 4 --json bench/results/dapo-step-smollm2.json

The run folder gives the stage's settings, its SFT adapter and its tasks; each backend trains
from that adapter for `--steps` steps in a scratch folder, the curriculum's stages shrunk in
proportion (the recipe's k = 1..4 all visited), the held-out eval off. Timed by wrapping the
stage's own functions: `collect` (rollouts and rewards), `update` (old pass and optimiser steps)
and the validation check. A stage's time per step is projected from them at the recipe's own
rate of validation checks: collect + update + check x (checks / steps), so a short bench run
does not overweight validation. Both backends see the same tasks and seeds; their rollouts
differ (bf16 against float32 sampling), so the token counts are printed beside the times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.pipeline.stages import run_stages  # noqa: E402
from minisearch.train import dapo, keeper  # noqa: E402

WAYS = {"before: cpu-hf (generate, float32)": "cpu-hf", "after: cpu (cached sampler, train_dtype auto)": "cpu"}


def timed(owner, name: str, seconds: list):
    """Wrap owner.name so each call's wall time is appended to `seconds`; returns the original."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)
    setattr(owner, name, wrapper)
    return original


def checks(steps: int, every: int, val: bool) -> int:
    """Validation checks a stage of `steps` makes: the start, every `every` steps, the last."""
    return 0 if not val else 1 + len({s for s in range(1, steps + 1) if s % every == 0 or s == steps})


def measure(cfg, backend: str, steps: int, scratch: Path) -> dict:
    """One short stage on `backend`; the mean seconds of its parts and its tokens per step."""
    parts = {"collect": [], "update": [], "check": []}
    promote = max(1, round(cfg.promote_steps * steps / cfg.steps)) if cfg.promote_steps else 0
    short = dataclasses.replace(cfg, model_backend=backend, steps=steps, out=str(scratch / backend),
                                eval_tasks=None, promote_steps=promote, save_every=steps,
                                val_every=max(1, steps // 2))
    saved = [timed(dapo, "collect", parts["collect"]), timed(dapo, "update", parts["update"]),
             timed(keeper.Keeper, "check", parts["check"])]
    start = time.perf_counter()
    try:
        dapo.run(short, echo=lambda *_: None)
    finally:
        dapo.collect, dapo.update, keeper.Keeper.check = saved
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (Path(short.out) / "metrics.jsonl").read_text().splitlines()]
    mean = {k: sum(v) / len(v) if v else 0.0 for k, v in parts.items()}
    per_step = mean["collect"] + mean["update"] + mean["check"] * checks(cfg.steps, cfg.val_every,
                                                                        cfg.val_tasks > 0) / cfg.steps
    return {"backend": backend, "steps": steps, "wall_s": round(wall, 1),
            **{f"{k}_s": round(v, 3) for k, v in mean.items()}, "stage_s_per_step": round(per_step, 3),
            "model_tokens": round(sum(r["model_tokens"] for r in rows) / len(rows), 1),
            "searches": round(sum(r["searches"] for r in rows) / len(rows), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="A finished run folder (minisearch run RECIPE) with a dapo stage.")
    ap.add_argument("--stage", default="dapo", help="The dapo stage's name in the recipe.")
    ap.add_argument("--steps", type=int, default=12, help="Steps per backend.")
    ap.add_argument("--json", help="Also write the figures here.")
    args = ap.parse_args()
    import torch

    stage = next((s for s in run_stages(args.run) if s.name == args.stage), None)
    if stage is None or stage.kind != "dapo":
        sys.exit(f"{args.run}: no dapo stage named {args.stage!r}")
    cfg = stage.cfg
    with tempfile.TemporaryDirectory() as scratch:
        results = [measure(cfg, kind, args.steps, Path(scratch)) for kind in WAYS.values()]
    before, after = results
    ratio = after["stage_s_per_step"] / before["stage_s_per_step"]
    print(f"{args.run}: stage {args.stage}, {args.steps} steps per backend ({cfg.batch_tasks} groups of "
          f"{cfg.group}, {cfg.updates} updates a step; the recipe: {cfg.steps} steps, validation every "
          f"{cfg.val_every}), torch threads {torch.get_num_threads()}\n")
    print("| backend | collect s | update s | check s | stage s / step | vs before | model tokens | searches |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in zip(WAYS, results):
        print(f"| {name} | {r['collect_s']:.2f} | {r['update_s']:.2f} | {r['check_s']:.2f} | "
              f"{r['stage_s_per_step']:.2f} | {r['stage_s_per_step'] / before['stage_s_per_step']:.2f}x | "
              f"{r['model_tokens']:.0f} | {r['searches']:.2f} |")
    out = {"run": args.run, "stage": args.stage, "steps": args.steps, "before": before, "after": after,
           "step_time_ratio": round(ratio, 3)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
