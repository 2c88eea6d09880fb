"""The eval stage: RAG-PE's forced first search, a table per run with the setting named, the
paper's figures beside ours, and cells saved as measured so a killed eval resumes."""

import json

import pytest
from helpers import results_shown

from minisearch.agent.rollout import RolloutConfig, ScriptedGenerator, rollout
from minisearch.eval.stage import EvalConfig, paper_rows, rag_pe, run, table


def test_rag_pe_searches_the_question_once_then_the_model_answers(toy_env):
    world, searcher, tok, _ = toy_env
    tasks = world.qa["dev"][:2]
    seen = []

    def script(context):
        seen.append(results_shown(context))
        return "<answer> Ostrivel </answer>"
    gen = rag_pe(ScriptedGenerator(tok, script), tok, tasks, max_turns=1)
    trajs = rollout(tasks, gen, searcher.search, tok, RolloutConfig(max_turns=1, temperature=0.0))
    assert [t.queries for t in trajs] == [[t["question"]] for t in tasks]
    assert [t.answer for t in trajs] == ["Ostrivel", "Ostrivel"]
    assert seen and all(seen)  # the model only ever wrote after the results


def result(rows):
    return {"setting": {"corpus": "toy", "passages": 10, "retriever": "whoosh BM25", "topk": 3, "max_turns": 4},
            "rows": rows}


def row(model, set_, **m):
    return {"model": model, "set": set_, "n": 4, "format_ok": 1.0, "searches": 1.0, **m}


def test_table_names_the_setting_and_puts_the_paper_beside_matching_sets():
    rows = [row("base", "ramp-dev", span_acc=0.0, span_recall=0.5),
            row("base", "hotpotqa", em=0.1, f1=0.2, recall=0.25),
            row("dapo", "hotpotqa", em=0.3, f1=0.4, recall=0.5)]
    text = table(result(rows))
    assert "corpus: toy (10 passages), retriever: whoosh BM25, top-k 3, at most 4 searches" in text
    assert "| base | ramp-dev | 4 | 0.000 | 0.500 | - | 1.00 | 1.00 |" in text
    assert "| base | hotpotqa | 4 | 0.100 | 0.250 | 0.200 | 1.00 | 1.00 |" in text
    assert "| hotpotqa | 71.02 | 25.00 | 50.00 |" in text and "average" not in text
    six = [row("m", s, em=0, f1=0, recall=0.5) for s in ("hotpotqa", "fanoutqa", "musique", "2wikimultihopqa",
                                                         "bamboogle", "freshqa")]
    assert paper_rows(six)[-1] == "| average | 65.34 | 50.00 |"
    assert paper_rows([row("m", "toy-qa", em=0, f1=0, recall=1.0)]) == []


def test_eval_writes_metrics_and_resumes_from_saved_cells(toy_run, tmp_path, monkeypatch):
    root, world = toy_run
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(t) + "\n" for t in world.qa["dev"][:3]))
    cfg = EvalConfig(model=str(root / "model"), index=str(root / "index"), out=str(tmp_path / "eval"),
                     sets={"toy": str(qa)}, models={"base": None}, limit=3,
                     rollout=RolloutConfig(temperature=0.0, max_new_tokens=8, max_total_tokens=600))
    import minisearch.eval.stage as evalstage

    real, calls = evalstage.evaluate, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed in the second cell
        return real(*args, **kw)
    monkeypatch.setattr(evalstage, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, echo=lambda *_: None)
    assert len(list((tmp_path / "eval.tmp" / "cells").glob("*.json"))) == 1
    run(cfg, echo=lambda *_: None)
    assert len(calls) == 3  # the first cell was not measured again
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [(r["model"], r["set"], r["n"]) for r in metrics["rows"]] == [("RAG-PE (base)", "toy", 3),
                                                                         ("base", "toy", 3)]
    assert metrics["setting"]["topk"] == 3 and "| base | toy | 3 |" in (tmp_path / "eval" / "table.md").read_text()
    samples = (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 6 and all(json.loads(s)["searches"] >= 1 for s in samples[:3])  # RAG-PE searched


def test_scores_by_depth_mask_count_searches_needed_and_question_type():
    from minisearch.eval.evaluate import depth, summarise

    def ramp(k, needed, plan_queries, spans_ok, searches, made):
        plan = [{"query": q, "masks": []} for q in plan_queries]
        task = {"id": "t", "metadata": {"masks": ["x"] * k, "mask_num": k, "plan": plan, "searches_needed": needed}}
        return {"spans_correct": spans_ok, "spans": k, "all_spans": float(spans_ok == k), "span_tokens": spans_ok,
                "end": "answer", "searches": searches, **depth(task, made)}

    qa = [{"em": em, "f1": em, "recall": em, "end": "answer", "searches": 2, **depth({"metadata": {"type": kind}}, [])}
          for kind, em in [("bridge", 0.0), ("one-hop", 1.0), ("one-hop", 1.0)]]
    scored = [ramp(1, 1, ["A"], 1, 1, ["A"]), ramp(2, 2, ["A", "B"], 1, 2, ["A", " B  "]),
              ramp(3, 1, ["A"], 3, 1, ["a"]), ramp(2, 2, ["A", "C"], 0, 1, ["A"])]
    out = summarise(scored)
    d = out["by_depth"]
    assert d["k=1"]["span_acc"] == 1.0 and d["k=1"]["n"] == 1
    assert d["k>=2"]["n"] == 3 and d["k>=2"]["span_acc"] == round(4 / 7, 4) and d["k>=2"]["searches"] == round(4 / 3, 4)
    assert d["needed>=2"]["searches"] == 1.5 and d["needed=1"]["n"] == 2
    assert out["plan_queries"] == round(4 / 6, 4)  # "a" is not "A": a copy that lost a letter does not count
    assert "by_depth" not in d["k=1"]
    q = summarise(qa)["by_depth"]
    assert q["bridge"]["em"] == 0.0 and q["one-hop"]["em"] == 1.0
    lines = table({"setting": {"corpus": "c", "passages": 1, "retriever": "r", "topk": 1, "max_turns": 4},
                   "rows": [{"model": "m", "set": "s", **out}]})
    assert "| m | s | 1.000 / 1.00 (1) | 0.571 / 1.33 (3) | 1.000 / 1.00 (2) | 0.250 / 1.50 (2) | 0.667 |" in lines
