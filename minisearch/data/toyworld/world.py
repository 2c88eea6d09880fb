"""The toy world's entities and the facts between them.

The world is cut into regions of 20-60 entities. Every relation stays inside its region
(a person is born in a city of their region, founds a company there...), so the world can
be split train/dev/test by region: each entity belongs to one split, and a question about
test entities never names a train entity or answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from minisearch.data.toyworld.names import NameMaker

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
OCCUPATIONS = ["botanist", "engineer", "painter", "composer", "cartographer", "physician", "architect",
               "novelist", "astronomer", "glassblower", "film director", "merchant"]
INDUSTRIES = [("shipping", "Shipping"), ("glassmaking", "Glassworks"), ("publishing", "Press"),
              ("rail transport", "Railways"), ("textiles", "Mills"), ("banking", "Holdings"),
              ("brewing", "Breweries"), ("instrument making", "Instruments")]
WORK_KINDS = {"novel": ("wrote", "published"), "film": ("directed", "released"),
              "album": ("recorded", "released"), "opera": ("composed", "first performed")}
# Share of each kind in a region, in creation order (later kinds refer to earlier ones).
MIX = [("river", 0.08), ("city", 0.15), ("person", 0.42), ("company", 0.2), ("work", 0.15)]


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    region: int
    attrs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "region": self.region,
                "attrs": self.attrs}


def date_text(day: int, month: int, year: int) -> str:
    return f"{day} {MONTHS[month - 1]} {year}"


def region_sizes(size: int) -> list[int]:
    """Split `size` entities into regions of 20-60 (about a tenth of the world each when small)."""
    target = max(20, min(60, size // 10))
    n = max(1, size // target)
    return [size // n + (1 if i < size % n else 0) for i in range(n)]


def kind_counts(n: int) -> dict[str, int]:
    counts = {kind: max(1, round(share * n)) for kind, share in MIX}
    counts["city"] = max(2, counts["city"])
    counts["person"] += n - sum(counts.values())  # persons absorb rounding
    return counts


def build_entities(size: int, rng: random.Random) -> list[Entity]:
    names = NameMaker(rng)
    serial: dict[str, int] = {}
    entities: list[Entity] = []

    def new(kind: str, name: str, region: int, **attrs) -> Entity:
        serial[kind] = serial.get(kind, 0) + 1
        entity = Entity(f"{kind}-{serial[kind]:06d}", kind, name, region, attrs)
        entities.append(entity)
        return entity

    for region, n in enumerate(region_sizes(size)):
        counts = kind_counts(n)
        rivers = [new("river", names.river(), region, length_km=rng.randint(40, 3400),
                      sea=f"the {names.word((2, 2))} Sea", cities=[]) for _ in range(counts["river"])]
        cities = []
        for _ in range(counts["city"]):
            river = rng.choice(rivers) if rng.random() < 0.75 else None
            city = new("city", names.city(), region, population=rng.randint(2_000, 3_000_000),
                       founded=rng.randint(700, 1900), river=river.id if river else None)
            if river:
                river.attrs["cities"].append(city.id)
            cities.append(city)
        people = [new("person", names.person(), region, born=_birth(rng), birth_city=rng.choice(cities).id,
                      occupation=rng.choice(OCCUPATIONS)) for _ in range(counts["person"])]
        companies = []
        for _ in range(counts["company"]):
            industry, word = rng.choice(INDUSTRIES)
            founder = rng.choice(people)
            companies.append(new("company", names.company(word), region, industry=industry,
                                 founder=founder.id, founded=min(2024, founder.attrs["born"][2] + rng.randint(20, 60)),
                                 headquarters=rng.choice(cities).id, employees=rng.randint(12, 90_000)))
        for _ in range(counts["work"]):
            kind = rng.choice(list(WORK_KINDS))
            creator = rng.choice(people)
            publisher = rng.choice(companies) if rng.random() < 0.7 else None
            new("work", names.work(kind), region, form=kind, creator=creator.id,
                year=min(2025, creator.attrs["born"][2] + rng.randint(18, 70)),
                publisher=publisher.id if publisher else None)
    return entities


def _birth(rng: random.Random) -> list[int]:
    return [rng.randint(1, 28), rng.randint(1, 12), rng.randint(1790, 1990)]
