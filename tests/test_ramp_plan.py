"""RAMP tasks whose masks live in different places: search plans, the mix, the teacher that follows them."""

from __future__ import annotations

import json
import random

import pytest

from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.ramp.plan import plan_queries, search_plan
from minisearch.ramp.tasks import RampConfig, run, thin_single


@pytest.fixture(scope="module")
def plan_run(toy_run, tmp_path_factory):
    """The ramp stage with recover: plan over the toy run (top-1 searches, as the demo's agent)."""
    root, world = toy_run
    tmp = tmp_path_factory.mktemp("plan")
    corpus = tmp / "passages.jsonl"
    write_jsonl(corpus, world.passages)
    out = run(RampConfig(corpus=str(corpus), out=str(tmp / "ramp"), index=str(root / "index"), recover="plan",
                         recover_k=1, per_passage=3, dev_fraction=0.1), echo=lambda *_: None)
    tasks = list(read_jsonl(out / "train.jsonl")) + list(read_jsonl(out / "dev.jsonl"))
    return root, world, out, tasks


def test_a_plan_recovers_every_mask_it_claims_with_queries_the_agent_can_see(plan_run):
    from minisearch.search import open_searcher

    root, _, _, tasks = plan_run
    assert len(tasks) > 200
    with open_searcher(root / "index") as searcher:
        for t in tasks:
            meta = t["metadata"]
            assert meta["searches_needed"] == len(meta["plan"]) >= 1
            shown, filled = "", []
            for step in meta["plan"]:
                query = step["query"]
                assert query == meta["title"] or query in meta["masked"] or query in shown, (t["id"], query)
                hits = searcher.search([query], k=1, exclude_ids=[[meta["source_id"]]])[0]
                text = "\n".join(h.contents for h in hits)
                assert step["masks"] and all(m in text for m in step["masks"]), (t["id"], step)
                assert not any(m in query or query in m for m in step["masks"])  # no query holds what it finds
                shown += text
                filled += step["masks"]
            assert sorted(filled) == sorted(meta["masks"])


def test_a_task_said_to_need_two_searches_is_not_solved_by_its_title(plan_run):
    from minisearch.search import open_searcher

    root, _, _, tasks = plan_run
    multi = [t for t in tasks if t["metadata"]["searches_needed"] >= 2]
    assert len(multi) > 40
    chains = [t for t in multi if any(s["query"] in t["metadata"]["masks"] for s in t["metadata"]["plan"])]
    assert chains  # bridges: a masked name, found by the first search, is the second query
    with open_searcher(root / "index") as searcher:
        for t in multi:
            meta = t["metadata"]
            hits = searcher.search([meta["title"]], k=1, exclude_ids=[[meta["source_id"]]])[0]
            assert not all(any(m in h.contents for h in hits) for m in meta["masks"]), t["id"]


def test_at_least_half_of_the_multi_mask_tasks_need_several_searches(plan_run):
    _, _, out, tasks = plan_run
    for split in ("train", "dev"):
        rows = [t["metadata"] for t in read_jsonl(out / f"{split}.jsonl") if t["metadata"]["mask_num"] >= 2]
        assert sum(m["searches_needed"] >= 2 for m in rows) >= 0.5 * len(rows) > 0
    stats = json.loads((out / "stats.json").read_text())
    table = stats["searches_needed"]
    assert sum(n for row in table.values() for n in row.values()) == len(tasks)
    assert table["k=1"] == {"1": stats["mask_num"]["1"]}


def test_thinning_drops_only_one_search_multi_mask_tasks_and_just_enough():
    def task(k, needed):
        return {"metadata": {"mask_num": k, "searches_needed": needed}}
    tasks = [task(1, 1)] * 5 + [task(2, 1)] * 10 + [task(2, 2)] * 3 + [task(3, 2)]
    kept, dropped = thin_single(tasks, 0.5, random.Random(0))
    assert dropped == 6 and sum(t["metadata"]["mask_num"] == 1 for t in kept) == 5
    assert thin_single(tasks, 0.0, random.Random(0)) == (tasks, 0)
    assert thin_single(tasks, 1.0, random.Random(0))[1] == 10


def test_plans_are_greedy_and_need_a_visible_query():
    reach = {"Vethmora": "Vethmora is in Ostrivel. It employs 40 people.", "Ostrivel": "Ostrivel dates to 1204."}
    masked = "Vethmora employs [mask] in Ostrivel, founded in [mask]."
    assert search_plan(["40 people", "1204"], "Vethmora", masked, reach) == [
        {"query": "Vethmora", "masks": ["40 people"]}, {"query": "Ostrivel", "masks": ["1204"]}]
    assert search_plan(["1204"], "Vethmora", masked, reach, max_searches=0) is None
    assert search_plan(["Zmorg"], "Vethmora", masked, reach) is None  # nothing brings it back
    assert plan_queries("Vethmora", "Vethmora met Quorvelle Dantrisk in Ostrivel in 1901.") == [
        "Vethmora", "Quorvelle Dantrisk", "Ostrivel"]
    assert plan_queries("Vethmora", "Vethmora met Quorvelle Dantrisk.", names=False) == ["Vethmora"]


def test_the_scripted_teacher_follows_the_plans(plan_run):
    from transformers import AutoTokenizer

    from minisearch.agent.rollout import to_record
    from minisearch.search import open_searcher
    from minisearch.train.rewards import Outcome
    from minisearch.train.teachers import TeachConfig, teach
    from minisearch.train.teachers.scripted import ScriptedTeacher
    from minisearch.train.traj import judge, searches_by_k

    root, _, _, tasks = plan_run
    tasks = tasks[:150]
    cfg = TeachConfig(topk=1, answer_form="spans")
    tok = AutoTokenizer.from_pretrained(root / "model")
    with open_searcher(root / "index") as searcher:
        trajs = teach(tasks, ScriptedTeacher(cfg), searcher.search, tok, cfg)
    by_id = {t["id"]: t for t in tasks}
    records = [to_record(t, by_id[t.task_id], cfg.max_turns, "scripted") for t in trajs]
    for record in records:
        plan = [s["query"] for s in by_id[record["task_id"]]["metadata"]["plan"]]
        assert record["queries"] == plan, record["task_id"]
        assert judge(by_id[record["task_id"]], Outcome.of(record), 0.8)[0]
    stats = searches_by_k(records, by_id)
    needed = [t["metadata"]["searches_needed"] for t in tasks]
    assert stats["needed=2"] == 2.0 and stats["k=1"] == 1.0 and 2 in needed
    assert stats["k=2"] > 1.0
