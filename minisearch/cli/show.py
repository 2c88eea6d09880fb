"""What a run's agent does on held-out questions: the tally its eval stage measured, then a
few of those questions, right and wrong in the proportion the tally has (spread evenly
through the set's order, not the best), for `minisearch show RUN` and the end of `make demo`.

    tally, examples = held_out(Path("runs/demo"), n=3)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl


def held_out(root: Path, n: int = 3) -> tuple[list[str], list[dict]]:
    """(tally lines, examples): the run's last trained model on its first QA set (else its
    first set); each example {"question", "gold", "right", "type"}."""
    from minisearch.eval.qaset import load_set
    from minisearch.pipeline.stages import run_stages

    evals = [s.cfg for s in run_stages(root) if s.kind == "eval"]
    samples_file = Path(evals[-1].out) / "samples.jsonl" if evals else None
    if samples_file is None or not samples_file.is_file():
        raise UserError(f"{root}: no eval samples yet (eval/samples.jsonl); run the recipe to its eval stage")
    cfg = evals[-1]
    samples = list(read_jsonl(samples_file))
    model = list(cfg.models)[-1]
    qa_sets = [name for name in cfg.sets if any(s["set"] == name and "em" in s for s in samples)]
    name = (qa_sets or list(cfg.sets))[0]
    tasks = {t["id"]: t for t in load_set(cfg.sets[name], cfg.limit)}
    rows = [s for s in samples if s["model"] == model and s["set"] == name]
    right = [bool(s["em"] if "em" in s else s["all_spans"]) for s in rows]
    kinds = [tasks[s["task_id"]].get("metadata", {}).get("type", "") for s in rows]
    tally = [f"held-out {name}, {model}: {sum(right)} of {len(rows)} answered exactly ({sum(right) / len(rows):.0%})"]
    by_kind, right_kind = Counter(kinds), Counter(k for k, ok in zip(kinds, right) if ok)
    if len(by_kind) > 1:
        tally.append("  by type: " + ", ".join(f"{k} {right_kind[k]}/{m}" for k, m in sorted(by_kind.items())))
    n_right = min(max(round(n * sum(right) / len(rows)), 1), n - 1) if n > 1 else n  # one of each, at least
    picks = (spread([s for s, ok in zip(rows, right) if ok], n_right)
             + spread([s for s, ok in zip(rows, right) if not ok], n - n_right))
    return tally, [{"question": tasks[s["task_id"]]["question"], "gold": tasks[s["task_id"]]["golden_answers"],
                    "right": bool(s.get("em", s.get("all_spans"))),
                    "type": tasks[s["task_id"]].get("metadata", {}).get("type", "")} for s in picks]


def spread(items: list, k: int) -> list:
    """k items evenly spaced through `items`, the first one first: what the set is like, not
    its start.

    >>> spread(list(range(10)), 3), spread([1, 2], 5)
    ([0, 3, 6], [1, 2])
    """
    k = min(k, len(items))
    return [items[i * len(items) // k] for i in range(k)]
