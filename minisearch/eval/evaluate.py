"""Scoring an agent on held-out tasks: RAMP span accuracy, or EM / F1 / token recall for QA,
with the format-valid rate and the searches per task. Greedy decoding by default.

    metrics, samples = evaluate(backend, searcher, tasks, RolloutConfig(temperature=0.0))

`score(task, answer)` is the one place a finished answer meets its task; rejection in the
traj stage and the stage metrics all go through it.

By depth (`by_depth` in the metrics): RAMP tasks by mask count (k=1, k>=2) and by the searches
their plan needs (needed=1, needed>=2), each with its span accuracy, searches per episode and
the share of the plan's queries the agent wrote word for word (`plan_queries`: how often a
query holds the name it had to copy); QA tasks by question type (bridge apart), with EM.
"""

from __future__ import annotations

import json
from pathlib import Path

from minisearch.agent.rollout import RolloutConfig, rollout
from minisearch.metrics import exact_match, f1, is_ramp, ramp_span_recall, ramp_spans_correct, token_recall


def score(task: dict, answer: str | None) -> dict:
    """Answer metrics of one finished task: span counts for RAMP, EM/F1/recall for QA."""
    if is_ramp(task):
        ok = ramp_spans_correct(task, answer)
        return {"spans_correct": sum(ok), "spans": len(ok), "all_spans": float(all(ok) and bool(ok)),
                "span_tokens": round(sum(ramp_span_recall(task, answer)), 4)}
    golds = task["golden_answers"]
    return {"em": exact_match(answer, golds), "f1": f1(answer, golds), "recall": token_recall(answer, golds)}


def depth(task: dict, queries: list[str]) -> dict:
    """A sample's depth labels: {"k", "needed", "planned", "planned_made"} for RAMP, {"type"} for QA."""
    meta = task.get("metadata", {})
    if not is_ramp(task):
        return {"type": meta["type"]} if "type" in meta else {}
    out = {"k": meta["mask_num"]}
    if "plan" in meta:
        made = {" ".join(q.split()) for q in queries}
        out.update(needed=meta["searches_needed"], planned=len(meta["plan"]),
                   planned_made=sum(step["query"] in made for step in meta["plan"]))
    return out


def depth_groups(scored: list[dict]) -> dict[str, list[dict]]:
    """The samples of each depth group (a sample may be in several)."""
    groups: dict[str, list[dict]] = {}
    for s in scored:
        keys = []
        if "k" in s:
            keys.append("k=1" if s["k"] == 1 else "k>=2")
        if "needed" in s:
            keys.append("needed=1" if s["needed"] == 1 else "needed>=2")
        if "type" in s:
            keys.append(s["type"])
        for key in keys:
            groups.setdefault(key, []).append(s)
    return dict(sorted(groups.items()))


def summarise(scored: list[dict], by_depth: bool = True) -> dict:
    """Mean metrics over scored samples (each: score() parts + end + searches [+ depth labels])."""
    n = len(scored)
    if n == 0:
        return {"n": 0}
    out = {"n": n, "format_ok": sum(s["end"] == "answer" for s in scored) / n,
           "searches": sum(s["searches"] for s in scored) / n}
    ramp = [s for s in scored if "spans" in s]
    if ramp:
        out["span_acc"] = sum(s["spans_correct"] for s in ramp) / max(1, sum(s["spans"] for s in ramp))
        out["all_spans"] = sum(s["all_spans"] for s in ramp) / len(ramp)
        out["span_recall"] = sum(s.get("span_tokens", 0.0) for s in ramp) / max(1, sum(s["spans"] for s in ramp))
    qa = [s for s in scored if "em" in s]
    for key in ("em", "f1", "recall") if qa else ():
        out[key] = sum(s[key] for s in qa) / len(qa)
    planned = [s for s in scored if s.get("planned")]
    if planned:
        out["plan_queries"] = sum(s["planned_made"] for s in planned) / sum(s["planned"] for s in planned)
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    groups = depth_groups(scored) if by_depth else {}
    if len(groups) > 1:
        out["by_depth"] = {key: summarise(rows, by_depth=False) for key, rows in groups.items()}
    return out


def evaluate(backend, searcher, tasks: list[dict], cfg: RolloutConfig, generate=None) -> tuple[dict, list[dict]]:
    """Run every task once through the rollout loop and score it; (metrics, one sample per task).
    `generate` replaces the backend's own (the eval stage's RAG-PE writes the first turn)."""
    trajs = rollout(tasks, generate or backend.generate, searcher.search, backend.tokenizer, cfg,
                    max_context=getattr(backend, "max_context", None))
    by_id = {t["id"]: t for t in tasks}
    samples = []
    for traj in trajs:
        task = by_id[traj.task_id]
        samples.append({"task_id": traj.task_id, "answer": traj.answer, "end": traj.end, "searches": traj.searches,
                        "queries": traj.queries, **score(task, traj.answer), **depth(task, traj.queries)})
    return summarise(samples), samples


def evaluate_once(backend, searcher, tasks: list[dict], cfg: RolloutConfig, path) -> dict:
    """The metrics of `tasks`, measured once: a resumed stage reads them back from `path`."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    metrics = evaluate(backend, searcher, tasks, cfg)[0]
    path.write_text(json.dumps(metrics) + "\n")
    return metrics
