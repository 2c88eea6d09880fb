"""Questions with gold answers about the toy world: one-hop, two-hop bridge, comparison.

Every question records the entities it involves (in hop order) and the passages that hold
the facts (`source_ids`); the canonical answer appears literally in the last of them, and
a bridge question's answer never appears in its first passage (it takes a second search).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from minisearch.data.toyworld.world import MONTHS, WORK_KINDS, Entity, date_text

Q = tuple[str, list[str], dict]  # question, golden answers, metadata


def date_answers(born: list[int]) -> list[str]:
    day, month, year = born
    return [date_text(day, month, year), f"{MONTHS[month - 1]} {day}, {year}"]


def number_answers(n: int, unit: str = "") -> list[str]:
    return [f"{n:,}{unit}", f"{n}{unit}"] if n >= 1000 else [f"{n}{unit}"]


def one_hop(e: Entity, by_id: dict[str, Entity], rng: random.Random) -> list[Q]:
    a, n = e.attrs, e.name
    out: list[Q] = []
    if e.kind == "person":
        out.append((rng.choice(["When was {n} born?", "What is the birth date of {n}?"]).format(n=n),
                    date_answers(a["born"]), _meta("one-hop", [e.id], [e.id])))
        city = by_id[a["birth_city"]]
        out.append((rng.choice(["In which city was {n} born?", "Where was {n} born?"]).format(n=n),
                    [city.name], _meta("one-hop", [e.id, city.id], [e.id])))
    elif e.kind == "city":
        out.append((rng.choice(["How many people live in {n}?", "What is the population of {n}?"]).format(n=n),
                    number_answers(a["population"]), _meta("one-hop", [e.id], [e.id])))
        out.append((f"In which year was {n} founded?", [str(a["founded"])], _meta("one-hop", [e.id], [e.id])))
    elif e.kind == "river":
        out.append((rng.choice(["How long is the {n}?", "What is the length of the {n}?"]).format(n=n),
                    number_answers(a["length_km"], " km"), _meta("one-hop", [e.id], [e.id])))
        out.append((f"Into which sea does the {n} flow?", [a["sea"], a["sea"][4:]],
                    _meta("one-hop", [e.id], [e.id])))
    elif e.kind == "company":
        founder, hq = by_id[a["founder"]], by_id[a["headquarters"]]
        out.append((rng.choice(["Who founded {n}?", "Who was the founder of {n}?"]).format(n=n),
                    [founder.name], _meta("one-hop", [e.id, founder.id], [e.id])))
        out.append((rng.choice(["Where is {n} headquartered?", "In which city is {n} based?"]).format(n=n),
                    [hq.name], _meta("one-hop", [e.id, hq.id], [e.id])))
        out.append((f"How many people does {n} employ?", number_answers(a["employees"]),
                    _meta("one-hop", [e.id], [e.id])))
    elif e.kind == "work":
        creator = by_id[a["creator"]]
        verb, done = WORK_KINDS[a["form"]]
        out.append((f"Who {verb} the {a['form']} {n}?", [creator.name],
                    _meta("one-hop", [e.id, creator.id], [e.id])))
        out.append((f"In which year was the {a['form']} {n} {done}?", [str(a["year"])],
                    _meta("one-hop", [e.id], [e.id])))
    return out


def bridges(e: Entity, by_id: dict[str, Entity], rng: random.Random) -> list[Q]:
    """Two-hop questions that start at e: (question, answers, meta) before the leak check."""
    a, n = e.attrs, e.name
    out: list[Q] = []
    if e.kind == "company":
        f = by_id[a["founder"]]
        out.append((rng.choice(["When was the founder of {n} born?", "What is the birth date of the person "
                                "who founded {n}?"]).format(n=n), date_answers(f.attrs["born"]),
                    _meta("bridge", [e.id, f.id], [e.id, f.id])))
        city = by_id[f.attrs["birth_city"]]
        out.append((f"In which city was the founder of {n} born?", [city.name],
                    _meta("bridge", [e.id, f.id, city.id], [e.id, f.id])))
        hq = by_id[a["headquarters"]]
        if hq.attrs["river"]:
            river = by_id[hq.attrs["river"]]
            out.append((f"Which river flows through the city where {n} has its headquarters?", [river.name],
                        _meta("bridge", [e.id, hq.id, river.id], [e.id, hq.id])))
    elif e.kind == "person":
        city = by_id[a["birth_city"]]
        out.append((rng.choice(["What is the population of the city where {n} was born?",
                                "How many people live in the birthplace of {n}?"]).format(n=n),
                    number_answers(city.attrs["population"]), _meta("bridge", [e.id, city.id], [e.id, city.id])))
    elif e.kind == "work":
        c = by_id[a["creator"]]
        verb, _ = WORK_KINDS[a["form"]]
        out.append((f"When was the person who {verb} {n} born?", date_answers(c.attrs["born"]),
                    _meta("bridge", [e.id, c.id], [e.id, c.id])))
        if a["publisher"]:
            p = by_id[a["publisher"]]
            founder = by_id[p.attrs["founder"]]
            out.append((f"Who founded the company that handled the release of {n}?", [founder.name],
                        _meta("bridge", [e.id, p.id, founder.id], [e.id, p.id])))
    return out


COMPARE = {
    "river": ("Which is longer, the {a} or the {b}?", lambda e: e.attrs["length_km"], max),
    "person": ("Who was born earlier, {a} or {b}?", lambda e: tuple(e.attrs["born"][::-1]), min),
    "company": ("Which company was founded first, {a} or {b}?", lambda e: e.attrs["founded"], min),
    "city": ("Which city has more inhabitants, {a} or {b}?", lambda e: e.attrs["population"], max),
}


def comparisons(region: list[Entity], rng: random.Random, count: int) -> Iterator[Q]:
    by_kind: dict[str, list[Entity]] = {}
    for e in region:
        by_kind.setdefault(e.kind, []).append(e)
    kinds = [k for k in COMPARE if len(by_kind.get(k, [])) >= 2]
    for _ in range(count if kinds else 0):
        kind = rng.choice(kinds)
        x, y = rng.sample(by_kind[kind], 2)
        template, key, pick = COMPARE[kind]
        if key(x) == key(y):
            continue
        winner = pick((x, y), key=key)
        yield (template.format(a=x.name, b=y.name), [winner.name],
               _meta("comparison", [x.id, y.id], [x.id, y.id]))


def _meta(kind: str, entities: list[str], source_ids: list[str]) -> dict:
    return {"type": kind, "hops": len(source_ids), "entities": entities, "source_ids": source_ids}
