"""Search plans for RAMP tasks: which searches bring each mask back, and the fewest that fill them all.

The queries an agent can write for a passage are its title (the task names it) and each name
the paragraph mentions (a capitalised run: in the toy world the linked entities, on Wikipedia
other pages' subjects). Each is searched once per passage, the passage itself excluded, and
`reach[query]` keeps the text of its top hits; a span is *covered* by a query when it stands
verbatim in those hits and shares no words with the query (a query may not hold what it finds).

A plan for the masks chosen is a greedy cover: at each step, of the queries the agent can see,
the one that brings back the most masks still missing (the title first among equals); its
results may show further names to search. A query is visible when it is the title, stands in
the masked paragraph, or stands in an earlier step's results: a masked name becomes a query
once a search brought it back (the bridge: the title's results name the founder, the next
search is the founder). A plan that leaves a mask unfilled is no plan (None).

>>> reach = {"Vethmora": "Vethmora was founded by Quorvelle Dantrisk.",
...          "Ostrivel": "Ostrivel is a city founded in 1204."}
>>> masked = "Vethmora, founded by [mask], is based in Ostrivel, a city founded in [mask]."
>>> search_plan(["Quorvelle Dantrisk", "1204"], "Vethmora", masked, reach)
[{'query': 'Vethmora', 'masks': ['Quorvelle Dantrisk']}, {'query': 'Ostrivel', 'masks': ['1204']}]
>>> search_plan(["1204"], "Vethmora", "Vethmora is based in [mask], a city founded in [mask].", reach) is None
True
"""

from __future__ import annotations

import re

from minisearch.ramp.spanfinder import candidates

MAX_SEARCHES = 4  # the protocol's default turn limit
_DIGIT = re.compile(r"\d")


def plan_queries(title: str, text: str, names: bool = True) -> list[str]:
    """The title, then (with `names`) each name the paragraph mentions, once, in order."""
    queries = [title]
    if names:
        for _, _, span in candidates(text):
            if span[0].isupper() and not _DIGIT.search(span) and span not in queries and span not in title:
                queries.append(span)
    return queries


def covers(hits_text: str, span: str, query: str) -> bool:
    """Whether hits found by `query` hold `span`, and the query does not hold any of its words."""
    return span in hits_text and not set(span.lower().split()) & set(query.lower().split())


def reach_of(searcher, passage_id: str, queries: list[str], k: int) -> dict[str, str]:
    """Each query's top-k hits (the passage excluded) as one text, query -> text."""
    hits = searcher.search(queries, k=k, exclude_ids=[[passage_id]] * len(queries))
    return {q: "\n".join(h.contents for h in found) for q, found in zip(queries, hits)}


def reachable(spans: list[str], reach: dict[str, str]) -> list[str]:
    """The spans some query covers (whether the agent can see that query depends on the masks)."""
    return [s for s in spans if any(covers(text, s, q) for q, text in reach.items())]


def search_plan(masks: list[str], title: str, masked: str, reach: dict[str, str],
                max_searches: int = MAX_SEARCHES) -> list[dict] | None:
    """The greedy cover of `masks` by visible queries: [{"query", "masks": [spans it fills]}], or None."""
    missing, plan, shown, used = list(masks), [], "", set()
    while missing and len(plan) < max_searches:
        best, got = None, []
        for query, text in reach.items():
            visible = query == title or query in masked or query in shown
            if query in used or not visible:
                continue
            found = [m for m in missing if covers(text, m, query)]
            if len(found) > len(got):
                best, got = query, found
        if best is None:
            return None
        plan.append({"query": best, "masks": got})
        missing = [m for m in missing if m not in got]
        shown += "\n" + reach[best]
        used.add(best)
    return None if missing else plan
