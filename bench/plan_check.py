"""The plan beside a finished run: each stage's estimated and measured seconds, and their ratio.

    python bench/plan_check.py runs/demo                        # the cpu profile
    python bench/plan_check.py runs/qwen1.5b --hardware rtx4090
    python bench/plan_check.py runs/demo --save bench/results/demo-cpu.json   # record the measurement

Measured seconds come from the run's `times.json` (written by `minisearch run`), else from the
finish times in the stages' done.json (each stage's time since the one before it finished).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.pipeline.plan import Planner  # noqa: E402
from minisearch.pipeline.stages import run_stages  # noqa: E402
from minisearch.rundir import read_done  # noqa: E402


def measured(root: Path, stages) -> dict[str, float]:
    if (root / "times.json").is_file():
        return json.loads((root / "times.json").read_text())
    out, last = {}, None
    for s in stages:
        done = read_done(s.cfg.out)
        if done is None:
            continue
        end = datetime.datetime.fromisoformat(done["finished"])
        out[s.name] = round(done["seconds"] if last is None else max(done["seconds"], (end - last).total_seconds()), 1)
        last = end
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--hardware", default="cpu")
    ap.add_argument("--save", help="write the measured stage seconds here (the file tests/test_plan.py reads)")
    args = ap.parse_args()
    root = Path(args.run)
    stages = run_stages(root)
    costs = Planner(args.hardware, stages).plan()
    real = measured(root, stages)
    print(f"{'stage':<14} {'plan s':>9} {'measured s':>11} {'plan/measured':>14}")
    for c in costs:
        m = real.get(c.stage)
        ratio = f"{c.seconds / m:.2f}" if m else "-"
        print(f"{c.stage:<14} {c.seconds:>9.1f} {m if m is not None else '-':>11} {ratio:>14}")
    total_plan, total_real = sum(c.seconds for c in costs), sum(real.values())
    print(f"{'total':<14} {total_plan:>9.1f} {total_real:>11.1f} {total_plan / max(total_real, 1e-9):>14.2f}")
    if args.save:
        Path(args.save).write_text(json.dumps({
            "what": f"{root}: each stage's wall seconds", "machine": f"{platform.processor() or platform.machine()}",
            "date": datetime.date.today().isoformat(), "stage_seconds": real, "total_seconds": round(total_real, 1)},
            indent=2) + "\n")


if __name__ == "__main__":
    main()
