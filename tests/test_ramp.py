"""RAMP tasks: spans found and filtered as the paper says, k as configured, sources kept apart."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from click.testing import CliRunner

from minisearch.cli import main
from minisearch.data.toyworld import build_world
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.metrics import fill_masks
from minisearch.ramp.spanfinder import find_spans
from minisearch.ramp.tasks import RampConfig, candidates, make_task, make_tasks, run, span_weight
from minisearch.records import MASK, make_passage


@pytest.mark.parametrize("contents, expected", [
    ("Velk\nQuorvelle Dantrisk was born on 14 March 1873 in Ostrivel.", ["Quorvelle Dantrisk", "14 March 1873",
                                                                          "Ostrivel"]),
    ("Velk\nThe Velkaran River is 812 km long.", ["Velkaran River", "812 km"]),
    ("Velk\nIt opened on March 3, 1901 with 1,204 employees.", ["March 3, 1901", "1,204 employees"]),
    ("Velk\nHer novel \"The Glass Shore\" appeared in 1922.", ['"The Glass Shore"', "1922"]),
    ("Velk\nThe Bank of Ostrivel lends money.", ["Bank of Ostrivel"]),
    ("Velkaran River\nThe Velkaran River flows west.", []),            # the title is never a span
    ("Velk\nOstrivel is big. Ostrivel is old.", []),                   # a span seen twice is dropped
    ("Velk\nHerons nest here. Barges pass by.", []),                   # sentence-initial common words
    ("Velk\n", []),
])
def test_find_spans(contents, expected):
    assert find_spans(contents) == expected


def passage(text, title="Velk", pid="p1"):
    return make_passage(pid, title, text)


LONG = ("Velk was born on 14 March 1873 in Ostrivel and founded Vethmora Holdings in 1901, a company with "
        "1,204 employees that built ships on the Velkaran River for many years before it closed in 1950.")


def test_make_task_masks_k_spans_and_keeps_what_training_needs():
    task, why = make_task(passage(LONG), 3, random.Random(0), min_words=10)
    meta = task["metadata"]
    assert why == "" and meta["mask_num"] == 3 == len(meta["masks"]) == meta["masked"].count(MASK)
    assert meta["source_id"] == "p1" and task["golden_answers"] == [LONG]
    assert task["question"].endswith(meta["masked"]) and MASK in task["question"]
    assert fill_masks(meta["masked"], LONG, 3) == meta["masks"]  # the gold paragraph fills every mask
    rebuilt = meta["masked"]
    for span in meta["masks"]:
        rebuilt = rebuilt.replace(MASK, span, 1)
    assert rebuilt == LONG


def test_a_rambling_answer_is_not_read_as_the_paragraph():
    """A reply that repeats the paragraph many times over fills no mask, even where the
    alignment would find the right words."""
    masked = "Gulls are placed with terns in the family [mask]. They are related to auks."
    filled = masked.replace("[mask]", "Laridae")
    assert fill_masks(masked, filled, 1) == ["Laridae"]
    assert fill_masks(masked, " ".join([filled] * 3), 1) != [None]  # a repeat or two: still read
    assert fill_masks(masked, " ".join([filled] * 12), 1) == [None]


def test_title_prepended_when_absent_and_never_masked():
    task, _ = make_task(passage("Ostrivel lies on a river 812 km long; its founder was Quorvelle Dantrisk, "
                                "who lived there until 1901 with many other people of the region.", title="Zim"),
                        4, random.Random(1), min_words=10)
    assert task["golden_answers"][0].startswith("Zim: ")
    assert all("Zim" not in span for span in task["metadata"]["masks"])
    assert "\nTitle: Zim\nParagraph: Zim: " in task["question"]  # the prompt names the subject in one place


@pytest.mark.parametrize("text, why", [("Too short.", "too_short"),
                                       ("words " * 40, "no_spans")])
def test_skips(text, why):
    assert make_task(passage(text), 2, random.Random(0)) == (None, why)


def test_never_starts_with_a_mask():
    world = build_world(300, seed=0)
    rng = random.Random(0)
    tasks = [make_task(p, 4, rng)[0] for p in world.passages]
    assert all(not t["metadata"]["masked"].startswith(MASK) for t in tasks if t)


def test_longer_spans_and_numbers_weigh_more():
    assert span_weight("14 March 1873") > span_weight("Ostrivel") and span_weight("812 km") > span_weight("Velk")


def test_stage_k_distribution_and_split_by_passage(tmp_path):
    out = run(RampConfig(corpus="toyworld:600", out=str(tmp_path / "ramp"), k_weights=[1, 0, 0, 1],
                         dev_fraction=0.2))
    train, dev = list(read_jsonl(out / "train.jsonl")), list(read_jsonl(out / "dev.jsonl"))
    ks = Counter(t["metadata"]["mask_num"] for t in train + dev)
    assert 0.4 < ks[1] / sum(ks.values()) < 0.6 and ks[4] > 50  # half ask for 1 mask, half for 4
    for t in train + dev:  # fewer than 4 masks only where the passage had fewer spans
        if 1 < t["metadata"]["mask_num"] < 4:
            assert len(find_spans(t["golden_answers"][0], t["metadata"]["title"])) == t["metadata"]["mask_num"]
    sources = [t["metadata"]["source_id"] for t in train + dev]
    assert len(set(sources)) == len(sources)  # one task per passage: split by source
    assert 0.1 < len(dev) / len(sources) < 0.3
    stats = json.loads((out / "stats.json").read_text())
    assert stats["train"] == len(train) and (out / "done.json").is_file()


def test_bad_weights_and_cli(tmp_path):
    with pytest.raises(UserError, match="four"):
        run(RampConfig(corpus="toyworld:60", out=str(tmp_path / "r"), k_weights=[1, 1]))
    result = CliRunner().invoke(main, ["ramp", "toyworld:100", "--out", str(tmp_path / "r2"), "--k-weights", "x"])
    assert result.exit_code == 2 and "--k-weights" in result.output
    result = CliRunner().invoke(main, ["ramp", "toyworld:100", "--out", str(tmp_path / "r3")])
    assert result.exit_code == 0 and (tmp_path / "r3" / "train.jsonl").is_file()


def test_perplexity_masking_picks_what_the_model_guesses_worst(toy_run):
    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.ramp.tasks import hardest, span_losses

    root, world = toy_run
    backend = CpuBackend(root / "model")
    text = LONG
    spans = find_spans(text, "Velk")
    losses = span_losses(backend, text, spans)
    assert len(losses) == len(spans) and all(x > 0 for x in losses) and len(set(losses)) > 1
    worst = max(zip(losses, spans))[1]
    task, _ = make_task(passage(text), 1, random.Random(0), min_words=10, choose=hardest(backend))
    assert task["metadata"]["masks"] == [worst]


def test_only_spans_another_passage_holds_are_masked_with_an_index(toy_run):
    from minisearch.ramp.tasks import recoverable
    from minisearch.search import open_searcher

    root, world = toy_run
    by_id = {e.id: e for e in world.entities}
    contents = {p["id"]: p["contents"] for p in world.passages}
    company = next(e for e in world.entities if e.kind == "company"  # a passage that opens with its title
                   and contents[e.id].split("\n", 1)[1].startswith(e.name))
    text = contents[company.id]
    founder = by_id[company.attrs["founder"]].name
    spans = find_spans(text)
    staff = next(s for s in spans if s.startswith(f"{company.attrs['employees']:,}"))
    assert founder in spans
    with open_searcher(root / "index") as searcher:
        kept = recoverable(searcher, spans, company.id)
        assert founder in kept  # the founder's own page names them
        assert staff not in kept  # the head count is written only here
        made = [make_task({"id": company.id, "contents": text}, 4, random.Random(seed), searcher=searcher)[0]
                for seed in range(10)]
    made = [t for t in made if t]
    assert made and all(set(t["metadata"]["masks"]) <= set(kept) for t in made)


def test_several_tasks_per_passage_stay_on_one_side_of_the_split(tmp_path):
    out = run(RampConfig(corpus="toyworld:300", out=str(tmp_path / "ramp"), dev_fraction=0.2, per_passage=3))
    tasks = list(read_jsonl(out / "train.jsonl")) + list(read_jsonl(out / "dev.jsonl"))
    dev_sources = {t["metadata"]["source_id"] for t in read_jsonl(out / "dev.jsonl")}
    train_sources = {t["metadata"]["source_id"] for t in read_jsonl(out / "train.jsonl")}
    assert not dev_sources & train_sources
    assert len({t["id"] for t in tasks}) == len(tasks) > 1.8 * len(dev_sources | train_sources)
    assert len({t["metadata"]["masked"] for t in tasks}) == len(tasks)  # no task twice


def test_a_passage_is_searched_and_skipped_once_however_many_tasks_it_gives(toy_run):
    from minisearch.search import open_searcher

    root, world = toy_run
    calls = []
    with open_searcher(root / "index") as searcher:
        class Counting:
            def search(self, *args, **kw):
                calls.append(args)
                return searcher.search(*args, **kw)
        tasks, skipped = make_tasks(world.passages[0], [1, 2, 1, 2], random.Random(0), searcher=Counting())
    assert len(calls) == 1 and len(tasks) + sum(skipped.values()) == 4 and tasks
    assert [t["id"] for t in tasks][0] == f"ramp-{world.passages[0]['id']}"
    assert make_tasks(passage("Too short."), [1, 2, 3], random.Random(0)) == ([], Counter(too_short=1))


def test_recover_title_keeps_only_the_masks_a_search_for_the_title_brings_back(toy_run, tmp_path):
    from minisearch.search import open_searcher

    root, world = toy_run
    corpus = tmp_path / "passages.jsonl"
    write_jsonl(corpus, world.passages)
    tight = run(RampConfig(corpus=str(corpus), out=str(tmp_path / "title"), index=str(root / "index"), dev_fraction=0,
                           recover="title", recover_k=1))
    tasks = list(read_jsonl(tight / "train.jsonl"))
    assert tasks
    with open_searcher(root / "index") as searcher:  # the filter drops spans: the linked facts, among others
        kept = dropped = 0
        for p in world.passages:
            title, text, spans, why = candidates(p)
            if why or not title:
                continue
            hits = searcher.search([title], k=1, exclude_ids=[[p["id"]]])[0]
            found = [s for s in spans if any(s in h.contents for h in hits)]
            kept, dropped = kept + len(found), dropped + len(spans) - len(found)
        assert kept and dropped > 0.2 * (kept + dropped)
        spans = {s for p in world.passages for s in candidates(p)[2]}
        assert {m for t in tasks for m in t["metadata"]["masks"]} <= spans
        for t in tasks:
            meta = t["metadata"]
            hits = searcher.search([meta["title"]], k=1, exclude_ids=[[meta["source_id"]]])[0]
            assert all(any(span in h.contents for h in hits) for span in meta["masks"]), t["id"]
    untitled = {"id": "p1", "contents": LONG}  # one line: no title
    with open_searcher(root / "index") as searcher:
        made = [make_tasks(untitled, [1], random.Random(0), searcher=searcher, recover=r) for r in ("title", "span")]
    assert made[0] == ([], Counter(no_title=1)) and made[1][0]  # recover: span masks the same passage
    with pytest.raises(UserError, match="recover='query' is not one of span, title, plan"):
        RampConfig(corpus=str(corpus), out=str(tmp_path / "bad"), index=str(root / "index"), recover="query")


def test_a_seeded_sample_of_passages_bounds_the_stage(tmp_path, toy_world):
    corpus = tmp_path / "passages.jsonl"
    write_jsonl(corpus, toy_world.passages)

    def sources(seed, n=40):
        out = run(RampConfig(corpus=str(corpus), out=str(tmp_path / f"s{seed}-{n}"), passages=n, seed=seed,
                             dev_fraction=0), echo=lambda *_: None)
        return [t["metadata"]["source_id"] for t in read_jsonl(out / "train.jsonl")]

    first = sources(0)
    assert 0 < len(set(first)) <= 40 and first == sources(0, 40)  # the same sample for the same seed
    assert set(first) != set(sources(1))
    order = [p["id"] for p in toy_world.passages]
    assert [order.index(s) for s in first] == sorted(order.index(s) for s in first)  # in corpus order
    assert len(set(sources(0, 10_000))) > 150  # more than the corpus: all of it


def test_batched_recoverability_searches_make_the_same_tasks(toy_run, tmp_path, monkeypatch):
    import minisearch.ramp.tasks as tasks_module

    root, world = toy_run
    corpus = tmp_path / "passages.jsonl"
    write_jsonl(corpus, world.passages)
    made = {}
    for batch in (256, 1):
        monkeypatch.setattr(tasks_module, "BATCH", batch)
        for recover in ("span", "title"):
            out = run(RampConfig(corpus=str(corpus), out=str(tmp_path / f"{recover}{batch}"), index=str(root / "index"),
                                 recover=recover, per_passage=2), echo=lambda *_: None)
            made[batch, recover] = list(read_jsonl(out / "train.jsonl")) + list(read_jsonl(out / "dev.jsonl"))
    assert made[256, "span"] == made[1, "span"] and made[256, "title"] == made[1, "title"]
    assert made[1, "title"]
