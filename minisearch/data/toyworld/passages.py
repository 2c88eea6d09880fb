"""An entity's article: a lead passage and, optionally, a records passage, from varied templates.

Every fact has several phrasings, the facts after the opening sentence come in random
order, and neutral filler sentences bring each lead to 60-140 words. Related entities
are named (a company's passage names its founder) but their own facts are not repeated,
so a two-hop question needs two searches.

The records passage (same title, id `<entity>-r`) restates the entity's own facts and links
in other words, as an article's later sections restate its lead. It is what lets RAMP mask
the facts questions ask about: a RAMP task's searches exclude its own passage, and a fact
written in one passage only can never be found again.

With `linked` (the default), a lead also states one fact of a linked entity beside its name,
as an encyclopedia does ("headquartered in Ostrivel, a city founded in 1204"): a city's
founding year in a person's or a company's lead, the sea a city's river flows into, a
publisher's founding year in a work's lead. That fact is written in the linked entity's
own pages and nowhere else (the records passage restates only the entity's own facts), so
a RAMP mask on it is filled by searching the linked name, not the title: the tasks that
need two searches. None of these facts is what a bridge question asks (those stay out of
the first entity's pages).
"""

from __future__ import annotations

import random

from minisearch.data.toyworld.world import WORK_KINDS, Entity, date_text
from minisearch.records import make_passage

OPENING = {
    "person": ["{name} was {a_occupation} born on {born} in {birth_city}.",
               "{name} (born {born}, {birth_city}) was {a_occupation}.",
               "Born in {birth_city} on {born}, {name} became a well-known {occupation}."],
    "city": ["{name} is a city founded in {founded}.",
             "{name} is an old settlement whose founding dates to {founded}.",
             "Founded in {founded}, {name} is a city of the region."],
    "river": ["The {name} is a river {length} long that flows into {sea}.",
              "The {name} runs for {length} before it reaches {sea}.",
              "With a length of {length}, the {name} empties into {sea}."],
    "company": ["{name} is a {industry} company founded in {founded} by {founder}.",
                "{founder} founded {name}, a {industry} firm, in {founded}.",
                "Established in {founded} by {founder}, {name} works in {industry}."],
    "work": ["{name} is a {form} {made} by {creator} in {year}.",
             "{creator} {verb} the {form} {name}, which was {done} in {year}.",
             "The {form} {name} was {done} in {year}; it was {made} by {creator}."],
}
FACTS = {
    "population": ["It has a population of {population}.", "About {population} people live there.",
                   "Its population was counted at {population}."],
    "river": ["It lies on the banks of the {river}.", "The {river} flows through the city.",
              "The city grew up beside the {river}."],
    "cities": ["Along its course it passes {cities}.", "The river flows through {cities}.",
               "Towns on its banks include {cities}."],
    "headquarters": ["Its headquarters are in {headquarters}.", "The company is based in {headquarters}.",
                     "It is headquartered in {headquarters}."],
    "employees": ["It employs {employees} people.", "The firm has a workforce of {employees}.",
                  "Around {employees} people work for it."],
    "companies": ["{name} founded {companies}.", "Among the firms {name} started was {companies}.",
                  "{name} is remembered as the founder of {companies}."],
    "works": ["{name} is the author of {works}.", "The best-known work by {name} is {works}.",
              "Later in life came {works}."],
    "publisher": ["It was brought out by {publisher}.", "{publisher} handled its release.",
                  "The publisher was {publisher}."],
}
FILLER = {
    "person": ["Little is recorded about {their} early schooling.", "Letters written by {name} survive in a "
               "private collection.", "Colleagues described {name} as patient and exacting.",
               "A portrait of {name} hangs in a municipal gallery.", "{name} travelled widely in later life.",
               "A street in the old quarter was later named after {name}.", "Some early notebooks were "
               "lost in a fire.", "{name} rarely gave interviews.", "Friends remembered long walks and "
               "longer conversations."],
    "city": ["Its old market square is still used on feast days.", "The city is known for its stone "
             "bridges.", "Local records were kept in a town hall that still stands.",
             "Travellers often remark on its narrow streets and tiled roofs.", "A yearly fair draws "
             "visitors from the surrounding villages.", "Its oldest church was rebuilt twice.",
             "The surrounding hills are used for grazing.", "A small museum keeps maps of the old town."],
    "river": ["Fishing along the river was once an important trade.", "Several old mills stand on its "
              "banks.", "Its valley is known for orchards and quiet villages.",
              "Spring floods have shaped the lands along its course.", "Barges once carried timber "
              "downstream.", "Its waters are cold even in summer.", "Herons nest in the reeds of its "
              "lower reaches.", "Several bridges cross it."],
    "company": ["The company has gone through several reorganisations.", "Its early ledgers are kept in "
                "an archive.", "It is known for training apprentices.", "The firm's emblem is a "
                "stylised bird.", "Its offices moved more than once.", "Annual reports describe "
                "steady growth.", "A family trust held shares for decades.", "The firm sponsors a "
                "local choir."],
    "work": ["Critics were divided when it first appeared.", "It has been reissued several times.",
             "Later scholars have written about its structure.", "It is still discussed by enthusiasts.",
             "A restored edition appeared decades later.", "Its opening is often quoted.",
             "Few copies of the first edition survive.", "It was translated into several languages."],
}


# A linked entity's fact beside its name: (the sentence it replaces: "opening" or a FACTS key,
# the value it needs, templates). Each names the linked entity once, right before its fact.
LINKED = {
    "person": ("opening", "city_founded", [
        "{name} was {a_occupation} born on {born} in {birth_city}, a city founded in {city_founded}.",
        "Born on {born} in {birth_city}, a city founded in {city_founded}, {name} became a well-known "
        "{occupation}."]),
    "city": ("river", "river_sea", [
        "It lies on the banks of the {river}, a river that flows into {river_sea}.",
        "The {river}, which empties into {river_sea}, flows through the city."]),
    "company": ("headquarters", "hq_founded", [
        "Its headquarters are in {headquarters}, a city founded in {hq_founded}.",
        "The company is based in {headquarters}, which was founded in {hq_founded}."]),
    "work": ("publisher", "publisher_founded", [
        "It was brought out by {publisher}, a firm founded in {publisher_founded}.",
        "{publisher}, founded in {publisher_founded}, handled its release."]),
}


def write_passage(entity: Entity, by_id: dict[str, Entity], links: dict[str, dict[str, list[str]]],
                  rng: random.Random, linked: bool = True) -> dict:
    """The lead passage of one entity; `links[person_id]` lists the companies and works they
    made; with `linked`, one sentence also states a linked entity's fact (LINKED)."""
    values = _values(entity, by_id)
    for key, names in links.get(entity.id, {}).items():
        values[key] = _join(names)
    templates = {"opening": OPENING[entity.kind], **FACTS}
    where, needs, linked_templates = LINKED.get(entity.kind, ("", "", []))
    if linked and where:
        values.update(_linked_values(entity, by_id))
        if values.get(needs):
            templates[where] = linked_templates
    sentences = [rng.choice(templates["opening"]).format(**values)]
    facts = [rng.choice(templates[key]).format(**values) for key in FACTS if values.get(key)]
    rng.shuffle(facts)
    sentences += facts
    fillers = [f.format(**values) for f in FILLER[entity.kind]]
    rng.shuffle(fillers)
    while fillers and sum(len(s.split()) for s in sentences) < 60:
        sentences.insert(rng.randint(1, len(sentences)), fillers.pop())
    return make_passage(entity.id, entity.name, " ".join(sentences))


RECORDS = {
    "born": ["{name}'s date of birth is given as {born}.", "Records put the birth of {name} on {born}."],
    "birth_city": ["{name}'s birthplace was {birth_city}.", "The family of {name} lived in {birth_city}."],
    "occupation": ["By trade {name} was {a_occupation}.", "{name} worked as {a_occupation}."],
    "founded": ["{name} dates its founding to {founded}.", "The first charter of {name} is from {founded}."],
    "population": ["The last census counted {population} inhabitants in {name}.",
                   "{name} has {population} residents."],
    "river": ["{name} stands on the {river}.", "The {river} runs past {name}."],
    "length": ["The {name} has a total length of {length}.", "From source to mouth the {name} measures {length}."],
    "sea": ["The mouth of the {name} is on {sea}.", "The {name} ends in {sea}."],
    "founder": ["{founder} is named as the founder of {name}.", "{name} was set up by {founder}."],
    "headquarters": ["The head office of {name} is in {headquarters}.", "{name} keeps its main offices in "
                     "{headquarters}."],
    "employees": ["{name} has {employees} employees.", "The staff of {name} numbers {employees}."],
    "year": ["{name} first appeared in {year}.", "The year of release of {name} was {year}."],
    "creator": ["{creator} is credited as the maker of {name}.", "{name} is the work of {creator}."],
    "publisher": ["{name} was brought to the public by {publisher}.", "The release of {name} was handled by "
                  "{publisher}."],
}


def write_records(entity: Entity, by_id: dict[str, Entity], rng: random.Random) -> dict:
    """The entity's records passage: its own facts and links (not its relations' facts), shuffled,
    with one filler sentence."""
    values = _values(entity, by_id)
    facts = [rng.choice(RECORDS[key]).format(**values) for key in RECORDS if values.get(key)]
    rng.shuffle(facts)
    facts.insert(rng.randint(1, len(facts)), rng.choice(FILLER[entity.kind]).format(**values))
    return make_passage(f"{entity.id}-r", entity.name, " ".join(facts))


def _values(entity: Entity, by_id: dict[str, Entity]) -> dict:
    a = entity.attrs

    def name(eid):
        return by_id[eid].name if eid else None

    values = {"name": entity.name, "their": "their"}
    if entity.kind == "person":
        article = "an" if a["occupation"][0] in "aeiou" else "a"
        values.update(occupation=a["occupation"], a_occupation=f"{article} {a['occupation']}",
                      born=date_text(*a["born"]), birth_city=name(a["birth_city"]))
    elif entity.kind == "city":
        values.update(founded=a["founded"], population=f"{a['population']:,}", river=name(a["river"]))
    elif entity.kind == "river":
        cities = [name(c) for c in a["cities"]]
        values.update(length=f"{a['length_km']:,} km", sea=a["sea"], cities=_join(cities))
    elif entity.kind == "company":
        values.update(industry=a["industry"], founded=a["founded"], founder=name(a["founder"]),
                      headquarters=name(a["headquarters"]), employees=f"{a['employees']:,}")
    elif entity.kind == "work":
        verb, done = WORK_KINDS[a["form"]]
        values.update(form=a["form"], year=a["year"], creator=name(a["creator"]), verb=verb, done=done,
                      made=verb.replace("wrote", "written"), publisher=name(a["publisher"]))
    return values


def _linked_values(entity: Entity, by_id: dict[str, Entity]) -> dict:
    """The linked entities' facts LINKED can state (None where the link is absent)."""
    a = entity.attrs
    if entity.kind == "person":
        return {"city_founded": by_id[a["birth_city"]].attrs["founded"]}
    if entity.kind == "city":
        return {"river_sea": by_id[a["river"]].attrs["sea"] if a["river"] else None}
    if entity.kind == "company":
        return {"hq_founded": by_id[a["headquarters"]].attrs["founded"]}
    if entity.kind == "work":
        return {"publisher_founded": by_id[a["publisher"]].attrs["founded"] if a["publisher"] else None}
    return {}


def _join(names: list[str]) -> str | None:
    """'A', 'A and B', 'A, B and C'; None for no names."""
    if not names:
        return None
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def person_links(entities: list[Entity]) -> dict[str, dict[str, list[str]]]:
    """For each person, the names of the companies they founded and the works they made."""
    links: dict[str, dict[str, list[str]]] = {}
    for e in entities:
        if e.kind == "company":
            links.setdefault(e.attrs["founder"], {}).setdefault("companies", []).append(e.name)
        elif e.kind == "work":
            links.setdefault(e.attrs["creator"], {}).setdefault("works", []).append(e.name)
    return links
