"""DAPO's best adapter: RL never hands on an agent worse than the one it started from.

A validation split of the stage's own tasks (never the eval stage's, which stay held out) is
scored greedily before the first step and every `every` steps after; the adapter of the best
score so far is saved in the stage folder (`best/`, and `best.json` with the history), the
start included, so a run whose updates only hurt ends with the adapter it was given. The
score is span accuracy on RAMP tasks and F1 on QA tasks. The state is on disk, so a resumed
stage goes on comparing with the best it had.

    keeper = Keeper(tmp, val_tasks, every=10)
    keeper.check(0, backend, searcher, greedy)      # the start
    ...                                             # after step s: keeper.check(s, ...)
    kept = keeper.finish(backend, tmp / "adapter")  # the best adapter, in place of the last
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path


def split_validation(tasks: list[dict], n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(training tasks, `n` validation tasks) drawn at random (seeded), both in file order."""
    if n <= 0:
        return tasks, []
    picked = set(random.Random(f"dapo-val-{seed}").sample(range(len(tasks)), min(n, len(tasks) // 2)))
    return ([t for i, t in enumerate(tasks) if i not in picked], [t for i, t in enumerate(tasks) if i in picked])


def val_score(metrics: dict) -> float:
    """The number the keeper compares: span accuracy for RAMP tasks, F1 for QA."""
    return metrics.get("span_acc", metrics.get("f1", 0.0))


class Keeper:
    def __init__(self, folder: Path, tasks: list[dict], every: int):
        self.folder, self.tasks, self.every = Path(folder), tasks, every
        self.path = self.folder / "best.json"
        self.state = json.loads(self.path.read_text()) if self.path.is_file() else {"step": None, "score": None,
                                                                                     "history": []}

    def due(self, step: int, last: int) -> bool:
        """Whether step `step` (0: the start) is checked: the start, every `every` steps, the last."""
        return bool(self.tasks) and (step == 0 or step % self.every == 0 or step == last) and \
            all(h["step"] != step for h in self.state["history"])

    def check(self, step: int, backend, searcher, greedy) -> dict:
        """Score the current adapter on the validation split; save it when it is the best so far."""
        from minisearch.eval.evaluate import evaluate

        metrics = evaluate(backend, searcher, self.tasks, greedy)[0]
        score = val_score(metrics)
        best = self.state["score"] is None or score > self.state["score"]
        if best:
            shutil.rmtree(self.folder / "best", ignore_errors=True)
            backend.save_adapter(self.folder / "best")
            self.state.update(step=step, score=score)
        self.state["history"].append({"step": step, "score": score, "searches": metrics.get("searches"),
                                      "best": best})
        self.path.write_text(json.dumps(self.state, indent=1) + "\n")
        return {"val_score": score, "val_best_step": self.state["step"]}

    def finish(self, backend, out: Path, last: int) -> int:
        """Write the adapter to keep into `out` and load it into `backend`; returns its step."""
        if not self.tasks or self.state["step"] == last:
            backend.save_adapter(out)
        else:
            shutil.copytree(self.folder / "best", out, dirs_exist_ok=True)
            backend.use_adapter(out)
        shutil.rmtree(self.folder / "best", ignore_errors=True)
        return last if not self.tasks else self.state["step"]
