"""The built-in toy world: a seeded fictional encyclopedia with questions and gold answers.

    minisearch toyworld --size 2000 --out world     # passages.jsonl, entities.jsonl, qa/*.jsonl

No model has seen it, so scores on it measure search, not memory. People, cities, rivers,
companies and works carry dates, numbers, places and relations; each has a lead passage and,
unless `records` is off, a records passage restating its facts (what RAMP can mask); unless
`linked` is off, a lead also states a linked entity's fact, written in that entity's pages
only (what RAMP masks to need a second search: passages.py). The
QA splits (train/dev/test) are by region of the world, so every entity, and every answer
that is an entity, belongs to exactly one split. Same seed, same bytes.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minisearch.data.toyworld.passages import person_links, write_passage, write_records
from minisearch.data.toyworld.questions import bridges, comparisons, one_hop
from minisearch.data.toyworld.world import Entity, build_entities, region_sizes
from minisearch.errors import UserError
from minisearch.jsonl import write_jsonl
from minisearch.records import make_qa, split_contents
from minisearch.rundir import stage_folder
from minisearch.settings import Settings, setting

VERSION = 3
MIN_SIZE, MAX_SIZE = 60, 1_000_000
SPLITS = ("train", "dev", "test")

__all__ = ["Entity", "World", "WorldConfig", "build_world", "run", "write_world"]


@dataclass
class World:
    seed: int
    size: int
    entities: list[Entity]
    passages: list[dict]
    qa: dict[str, list[dict]] = field(default_factory=dict)

    def counts(self) -> dict:
        by_type: dict[str, int] = {}
        for rows in self.qa.values():
            for row in rows:
                by_type[row["metadata"]["type"]] = by_type.get(row["metadata"]["type"], 0) + 1
        return {"entities": len(self.entities), "passages": len(self.passages),
                "qa": {split: len(rows) for split, rows in self.qa.items()}, "by_type": by_type}


def build_world(size: int, seed: int = 0, records: bool = True, linked: bool = True) -> World:
    """Generate the world of `size` entities from `seed`: a lead passage each, and a records
    passage after it when `records` (drawn from a generator of their own, so the leads and the
    questions are the same either way); `linked`: leads state a linked entity's fact."""
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"toy world size must be between {MIN_SIZE} and {MAX_SIZE:,} entities, got {size}")
    rng = random.Random(seed)
    entities = build_entities(size, rng)
    by_id = {e.id: e for e in entities}
    links = person_links(entities)
    passages = [write_passage(e, by_id, links, rng, linked) for e in entities]
    if records:
        rec_rng = random.Random(f"records-{seed}")
        passages = [p for lead, e in zip(passages, entities) for p in (lead, write_records(e, by_id, rec_rng))]
    text = {p["id"]: split_contents(p["contents"])[1] for p in passages}
    regions: dict[int, list[Entity]] = {}
    for e in entities:
        regions.setdefault(e.region, []).append(e)
    split_of = _region_splits(len(regions), rng)
    qa: dict[str, list[dict]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for region, members in regions.items():
        found = []
        for e in members:
            singles = one_hop(e, by_id, rng)
            found += rng.sample(singles, min(2, len(singles)))
            found += [q for q in bridges(e, by_id, rng) if rng.random() < 0.5]
        found += list(comparisons(members, rng, count=len(members) // 3))
        split = split_of[region]
        for question, answers, meta in found:
            if question in seen or not _answerable(answers[0], meta, text):
                continue
            seen.add(question)
            rows = qa[split]
            rows.append(make_qa(f"{split}-{len(rows):06d}", question, answers, **meta))
    return World(seed, size, entities, passages, qa)


def _region_splits(n: int, rng: random.Random) -> dict[int, str]:
    """About 80/10/10 of the regions, at least one each for dev and test."""
    order = list(range(n))
    rng.shuffle(order)
    held = max(1, round(n * 0.1))
    return {r: "dev" if i < held else "test" if i < 2 * held else "train" for i, r in enumerate(order)}


def _answerable(answer: str, meta: dict, text: dict[str, str]) -> bool:
    """The answer is in the last source passage, and a bridge's is in no passage of its first entity."""
    sources = meta["source_ids"]
    if meta["type"] == "comparison":
        return True  # the answer is one of the two titles
    if answer not in text[sources[-1]]:
        return False
    return meta["type"] != "bridge" or answer not in text[sources[0]] + text.get(f"{sources[0]}-r", "")


def write_world(out: str | Path, size: int, seed: int = 0, records: bool = True, linked: bool = True) -> dict:
    """Write passages.jsonl, entities.jsonl, qa/{train,dev,test}.jsonl and manifest.json."""
    world = build_world(size, seed, records, linked)
    out = Path(out)
    write_jsonl(out / "passages.jsonl", world.passages)
    write_jsonl(out / "entities.jsonl", (e.to_dict() for e in world.entities))
    for split, rows in world.qa.items():
        write_jsonl(out / "qa" / f"{split}.jsonl", rows)
    counts = world.counts()
    manifest = {"generator": "minisearch.toyworld", "version": VERSION, "seed": seed, "size": size, "records": records,
                "linked": linked,
                "regions": len(region_sizes(size)), **counts}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {**counts, "out": str(out)}


@dataclass
class WorldConfig(Settings):
    out: str = setting(help="Folder to write.")
    size: int = setting(2000, help="Number of entities.", min=1)
    seed: int = setting(0, help="Same seed, same world.")
    records: bool = setting(True, help="Give each entity a records passage restating its facts (without it "
                                       "RAMP can mask no fact a question asks about).")
    linked: bool = setting(True, help="A lead also states a linked entity's fact, written in that entity's pages "
                                      "only (RAMP tasks that need a second search).")


def run(cfg: WorldConfig, echo=print) -> Path:
    """The world as a stage folder (written whole, with done.json)."""
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        written = write_world(tmp, cfg.size, cfg.seed, cfg.records, cfg.linked)
        counts.update({k: v for k, v in written.items() if k != "out"})
    echo(f"world: {counts['entities']} entities, {counts['passages']} passages, QA {counts['qa']} in {cfg.out}")
    return Path(cfg.out)
