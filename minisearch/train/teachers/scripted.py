"""The scripted teacher: it knows the toy world, so the CPU loop gets good trajectories
without a big model. It still searches the real index and answers only from what the
searches returned; when the index does not bring a fact back, its answer says `unknown`
and the rejection step drops the trajectory.

RAMP task with a search plan (`metadata.plan`, from the ramp stage): the plan's next search
whose masks no result has shown yet, when its query can be seen (the title, a name in the
paragraph, or a name an earlier result showed: a query is found, never known); then, for a
mask still missing, or a task without a plan, search the page title (then the title with the
words just before the mask, then the words around the mask, when a query brought nothing);
answer once every mask has been seen or the searches run out. Search
turns carry no thought, RAMP and QA alike: a fixed sentence there teaches the tiny model to
repeat it instead of writing the query. QA task (toy world): search the question as asked
first (BM25 puts the right page first for every one-hop toy question, and the tiny model
copies a question from its start better than a name from its middle), then the title of each further
passage the question needs, in hop order; a later hop's entity must have shown up in
earlier results (a bridge is found, not known); answer with the first gold answer the
results hold.
"""

from __future__ import annotations

import re

from minisearch.agent.protocol import write_turn
from minisearch.errors import UserError
from minisearch.records import MASK
from minisearch.train.teachers import Episode, TeachConfig

_WORD = re.compile(r"\[mask\]|[\w][\w'’.,-]*\w|\w", re.I)


def mask_context(masked: str, i: int, before: int = 3, after: int = 2) -> tuple[str, str]:
    """The words just before and just after the i-th mask (other masks left out).

    >>> mask_context("The river runs for [mask] before it reaches the [mask].", 1)
    ('it reaches the', '')
    """
    words = _WORD.findall(masked)
    at = [j for j, w in enumerate(words) if w.lower() == MASK][i]
    left = [w for w in words[:at] if w.lower() != MASK][-before:]
    right = [w for w in words[at + 1:] if w.lower() != MASK][:after]
    return " ".join(left), " ".join(right)


def next_planned(plan: list[dict], made: list[str], seen: str, title: str, masked: str) -> str | None:
    """The query of the plan's first step not made yet whose masks `seen` lacks, if the agent can
    see it (the title, in the masked paragraph, or in results so far); else None.

    >>> plan = [{"query": "Vethmora", "masks": ["Ostrivel"]}, {"query": "Ostrivel", "masks": ["1204"]}]
    >>> masked = "Based in [mask], founded [mask]."
    >>> next_planned(plan, [], "", "Vethmora", masked)
    'Vethmora'
    >>> next_planned(plan, ["Vethmora"], "Vethmora is in Ostrivel.", "Vethmora", masked)
    'Ostrivel'
    >>> next_planned(plan, ["Vethmora"], "Vethmora lies on a river.", "Vethmora", masked) is None  # not shown
    True
    """
    for step in plan:
        query = step["query"]
        if query in made or all(m in seen for m in step["masks"]):
            continue
        if query == title or query in masked or query in seen:
            return query
    return None


class ScriptedTeacher:
    name = "scripted"

    def __init__(self, cfg: TeachConfig, names: dict[str, str] | None = None):
        self.cfg = cfg
        self.names = names or {}  # passage id -> title, for QA tasks

    def decide(self, episodes: list[Episode]) -> list[str]:
        return [self._ramp(e) if "masks" in e.task.get("metadata", {}) else self._qa(e) for e in episodes]

    def expand(self, queries: list[str]) -> list[list[str]]:
        return [[q] for q in queries]

    def _ramp(self, e: Episode) -> str:
        meta = e.task["metadata"]
        masks, masked, title = meta["masks"], meta["masked"], meta.get("title", "")
        seen = e.seen
        missing = [i for i, span in enumerate(masks) if span not in seen]
        planned = next_planned(meta.get("plan") or [], e.queries, seen, title, masked)
        if planned and len(e.queries) < self.cfg.max_turns:
            return write_turn("search", planned)
        if missing and len(e.queries) < self.cfg.max_turns:
            i = missing[0]
            left, right = mask_context(masked, i)
            near = " ".join(w for w in left.split() if w not in title.split())
            options = [title, f"{title} {near}", f"{left} {right}"]
            fresh = [" ".join(q.split()) for q in options if q.strip() and " ".join(q.split()) not in e.queries]
            if fresh:
                return write_turn("search", fresh[0])
        spans = [span if span in seen else "unknown" for span in masks]
        if self.cfg.answer_form == "spans":
            answer = "; ".join(spans)
        else:
            answer = masked
            for span in spans:
                answer = answer.replace(MASK, span, 1)
        thought = "All masks found." if all(s != "unknown" for s in spans) else "Some masks were not found."
        return write_turn("answer", answer, thought)

    def _qa(self, e: Episode) -> str:
        meta = e.task.get("metadata", {})
        sources = meta.get("source_ids")
        if not sources:
            raise UserError(f"task {e.task.get('id')}: the scripted teacher needs toy-world QA "
                            "(metadata.source_ids); use the agents teacher for other tasks")
        untitled = [s for s in sources if s not in self.names]
        if untitled:  # checked at once, even for a one-hop question: later hops search by title
            raise UserError(f"task {e.task.get('id')}: no title for passage {untitled[0]}; pass the "
                            "corpus the questions were written from (--corpus)")
        seen, hop = e.seen, len(e.queries)
        if hop < min(len(sources), self.cfg.max_turns):
            if hop == 0:
                return write_turn("search", e.task["question"])
            name = self.names[sources[hop]]
            if name in seen or name in e.task["question"]:
                return write_turn("search", name)
        found = [g for g in e.task["golden_answers"] if g.lower() in seen.lower()]
        if found:
            return write_turn("answer", found[0], f"The sources say {found[0]}.")
        return write_turn("answer", "unknown", "The sources do not say.")
