"""Scoring an agent on held-out tasks: RAMP span accuracy, or EM / F1 / token recall for QA,
with the format-valid rate and the searches per task. Greedy decoding by default.

    metrics, samples = evaluate(backend, searcher, tasks, RolloutConfig(temperature=0.0))

`score(task, answer)` is the one place a finished answer meets its task; rejection in the
traj stage and the stage metrics all go through it.
"""

from __future__ import annotations

import json
from pathlib import Path

from minisearch.agent.rollout import RolloutConfig, rollout
from minisearch.eval.metrics import exact_match, f1, is_ramp, ramp_span_recall, ramp_spans_correct, token_recall


def score(task: dict, answer: str | None) -> dict:
    """Answer metrics of one finished task: span counts for RAMP, EM/F1/recall for QA."""
    if is_ramp(task):
        ok = ramp_spans_correct(task, answer)
        return {"spans_correct": sum(ok), "spans": len(ok), "all_spans": float(all(ok) and bool(ok)),
                "span_tokens": round(sum(ramp_span_recall(task, answer)), 4)}
    golds = task["golden_answers"]
    return {"em": exact_match(answer, golds), "f1": f1(answer, golds), "recall": token_recall(answer, golds)}


def summarise(scored: list[dict]) -> dict:
    """Mean metrics over scored samples (each: score() parts + end + searches)."""
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
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def evaluate(backend, searcher, tasks: list[dict], cfg: RolloutConfig, generate=None) -> tuple[dict, list[dict]]:
    """Run every task once through the rollout loop and score it; (metrics, one sample per task).
    `generate` replaces the backend's own (the eval stage's RAG-PE writes the first turn)."""
    trajs = rollout(tasks, generate or backend.generate, searcher.search, backend.tokenizer, cfg,
                    max_context=getattr(backend, "max_context", None))
    by_id = {t["id"]: t for t in tasks}
    samples = []
    for traj in trajs:
        parts = score(by_id[traj.task_id], traj.answer)
        samples.append({"task_id": traj.task_id, "answer": traj.answer, "end": traj.end, "searches": traj.searches,
                        "queries": traj.queries, **parts})
    return summarise(samples), samples


def evaluate_once(backend, searcher, tasks: list[dict], cfg: RolloutConfig, path) -> dict:
    """The metrics of `tasks`, measured once: a resumed stage reads them back from `path`."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    metrics = evaluate(backend, searcher, tasks, cfg)[0]
    path.write_text(json.dumps(metrics) + "\n")
    return metrics
