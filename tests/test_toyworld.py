"""The toy world: deterministic, fictional, varied, answerable, and split without leaks."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from click.testing import CliRunner

from minisearch.cli import main
from minisearch.data.toyworld import build_world, write_world
from minisearch.errors import UserError
from minisearch.records import split_contents

COMMON = {"river", "table", "house", "water", "world", "city", "music", "paper", "stone", "green",
          "london", "paris", "john", "mary", "smith", "garden", "silver", "market", "north"}


@pytest.fixture(scope="module")
def world():
    return build_world(600, seed=3)


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    write_world(tmp_path / "a", 200, seed=1)
    write_world(tmp_path / "b", 200, seed=1)
    write_world(tmp_path / "c", 200, seed=2)
    files = ["passages.jsonl", "entities.jsonl", "qa/train.jsonl", "qa/dev.jsonl", "qa/test.jsonl",
             "manifest.json"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a/passages.jsonl").read_bytes() != (tmp_path / "c/passages.jsonl").read_bytes()


def test_sizes_and_ids(world):
    assert len(world.entities) == 600 and len(world.passages) == 1200
    assert [p["id"] for p in world.passages] == [i for e in world.entities for i in (e.id, f"{e.id}-r")]
    assert len({p["id"] for p in world.passages}) == 1200
    assert Counter(e.kind for e in world.entities).keys() == {"person", "city", "river", "company", "work"}


def test_names_unique_and_fictional(world):
    names = [e.name for e in world.entities]
    assert len(set(names)) == len(names)
    words = [w.lower() for n in names for w in re.findall(r"[A-Za-z]+", n)]
    invented = [w for w in words if w not in {"the", "of", "and", "at", "dusk", "last", "songs", "river",
                                             "shipping", "glassworks", "press", "railways", "mills",
                                             "holdings", "breweries", "instruments"}]
    assert not COMMON & set(invented)
    assert len(set(invented)) == len(invented)  # every invented word is used once


def test_passages_are_titled_and_sized(world):
    for p in world.passages:
        title, text = split_contents(p["contents"])
        assert title and title in text
        assert (10 if p["id"].endswith("-r") else 50) <= len(text.split()) <= 140, p


def test_records_restate_the_facts_questions_ask_and_leave_the_leads_and_questions_as_they_were(world):
    """Every one-hop answer is in its entity's records passage too (RAMP can mask it in the
    lead and find it there); records off gives the leads and the questions unchanged."""
    text = {p["id"]: p["contents"] for p in world.passages}
    one_hop = [r for rows in world.qa.values() for r in rows if r["metadata"]["type"] == "one-hop"]
    assert one_hop and all(r["golden_answers"][0] in text[r["metadata"]["source_ids"][0] + "-r"] for r in one_hop)
    plain = build_world(600, seed=3, records=False)
    assert plain.passages == [p for p in world.passages if not p["id"].endswith("-r")]
    assert plain.qa == world.qa


def test_templates_vary(world):
    people = [split_contents(p["contents"])[1] for p in world.passages if p["id"].startswith("person")]
    openings = Counter(re.sub(r"[A-Z][a-z]+|\d+", "X", text.split(". ")[0]) for text in people)
    assert len(openings) >= 3
    shapes = Counter(tuple(len(s.split()) for s in text.split(". ")) for text in people)
    assert len(shapes) > len(people) // 3  # sentence order and fillers vary


def test_every_answer_is_in_its_sources(world):
    text = {p["id"]: p["contents"] for p in world.passages}
    for rows in world.qa.values():
        for row in rows:
            meta = row["metadata"]
            assert any(row["golden_answers"][0] in text[s] for s in meta["source_ids"]), row


def test_bridge_needs_two_passages(world):
    text = {p["id"]: split_contents(p["contents"])[1] for p in world.passages}
    text = {i: t + " " + text.get(f"{i}-r", "") for i, t in text.items()}  # an entity's two passages
    bridges = [r for rows in world.qa.values() for r in rows if r["metadata"]["type"] == "bridge"]
    assert len(bridges) > 50
    for row in bridges:
        first, second = row["metadata"]["source_ids"]
        assert first != second
        assert row["golden_answers"][0] not in text[first] and row["golden_answers"][0] in text[second]
        # the first passage names the bridge entity, so the chain can be followed by search
        assert next(e for e in world.entities if e.id == second).name in text[first]


def test_comparisons_are_right(world):
    by_id = {e.id: e for e in world.entities}
    rows = [r for rows in world.qa.values() for r in rows if r["metadata"]["type"] == "comparison"]
    assert len(rows) > 20
    for row in rows:
        a, b = (by_id[i] for i in row["metadata"]["entities"])
        winner = row["golden_answers"][0]
        assert winner in (a.name, b.name) and a.kind == b.kind
        if a.kind == "river":
            assert winner == max(a, b, key=lambda e: e.attrs["length_km"]).name
        if a.kind == "person":
            assert winner == min(a, b, key=lambda e: e.attrs["born"][::-1]).name


def test_all_question_types_in_every_split(world):
    for split in ("train", "dev", "test"):
        assert {r["metadata"]["type"] for r in world.qa[split]} == {"one-hop", "bridge", "comparison"}
    questions = [r["question"] for rows in world.qa.values() for r in rows]
    assert len(questions) == len(set(questions))
    assert len(questions) > 2 * len(world.entities)


def test_splits_do_not_leak(world):
    by_id = {e.id: e for e in world.entities}
    owner = {}
    for split, rows in world.qa.items():
        for row in rows:
            assert row["id"].startswith(split + "-")
            for eid in row["metadata"]["entities"]:
                assert owner.setdefault(eid, split) == split, (eid, split)
    train_text = " ".join(r["question"] for r in world.qa["train"])
    for row in world.qa["test"]:
        for eid in row["metadata"]["entities"]:
            assert by_id[eid].name not in train_text
        if row["metadata"]["type"] != "one-hop" or not row["golden_answers"][0][0].isdigit():
            assert row["golden_answers"][0] not in train_text


def test_bad_sizes():
    for size in (0, 10, 2_000_000, "100"):
        with pytest.raises(UserError, match="size"):
            build_world(size)


def test_cli_writes_the_world(tmp_path):
    result = CliRunner().invoke(main, ["toyworld", "--size", "80", "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'w'}" in result.output
    counts = json.loads((tmp_path / "w" / "done.json").read_text())["counts"]
    assert counts["passages"] == 160  # a lead and a records passage each
    for split in ("train", "dev", "test"):
        lines = (tmp_path / "w" / "qa" / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == counts["qa"][split] > 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == 80
    assert len((tmp_path / "w" / "entities.jsonl").read_text().splitlines()) == 80


def test_a_lead_states_a_linked_entitys_fact_that_only_that_entitys_pages_hold(world):
    """The fact a lead states beside a linked name (its city's founding year, its river's sea,
    its publisher's founding year) is in the linked entity's pages, never in the entity's own
    records passage: filling it takes a search for the linked name. Off, the leads lose it."""
    from minisearch.data.toyworld.passages import LINKED, _linked_values

    text = {p["id"]: split_contents(p["contents"])[1] for p in world.passages}
    by_id = {e.id: e for e in world.entities}
    link_of = {"person": "birth_city", "city": "river", "company": "headquarters", "work": "publisher"}
    stated = 0
    for e in world.entities:
        if e.kind not in LINKED or not e.attrs.get(link_of[e.kind]):
            continue
        fact = str(next(iter(_linked_values(e, by_id).values())))
        other = e.attrs[link_of[e.kind]]
        assert fact in text[e.id] and fact in text[other] + text[f"{other}-r"], (e.id, fact)
        if fact not in {str(v) for v in e.attrs.values()}:  # unless it is one of the entity's own facts too
            assert fact not in text[f"{e.id}-r"], (e.id, fact)
        stated += 1
    assert stated > 300
    plain = build_world(600, seed=3, linked=False)
    assert not any(", a city founded in" in p["contents"] for p in plain.passages)
