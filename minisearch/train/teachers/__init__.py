"""Teachers: whoever writes the trajectories that SFT imitates.

Two teachers share one loop (`teach`), which owns the searching: each round it asks the
teacher for every live episode's next turn (`decide`), reads the turn with the protocol
parser, asks the teacher which queries to run for each search (`expand`: the query itself,
or several rewrites), runs them as one batch with each RAMP task's source passage
excluded, merges the results by rank, and appends the `<information>` turn exactly as the
rollout loop writes it. An episode ends at an answer, a malformed turn, or `max_turns`.

- `scripted.ScriptedTeacher`: knows the toy world (RAMP masks, QA entities), plans the
  right queries and answers only from what the searches returned.
- `agents.AgentTeacher`: the paper's multi-agent teacher, planner / rewriter / observer
  roles played by any model through a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from minisearch.agent.protocol import information_turn, parse_turn
from minisearch.agent.rollout import make_record


@dataclass
class TeachConfig:
    max_turns: int = 4          # searches per episode
    topk: int = 3               # passages shown per search
    words_per_hit: int = 80
    answer_form: str = "paragraph"  # RAMP answers: "paragraph" (the paper's) or "spans" ("a; b")


@dataclass
class Episode:
    task: dict
    turns: list[dict] = field(default_factory=list)             # {"who": "model"|"tool", "text"}
    queries: list[str] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)  # (query, information text)
    answer: str | None = None
    end: str = ""

    @property
    def seen(self) -> str:
        """Everything the searches have shown so far."""
        return "\n".join(info for _, info in self.history)

    def record(self, max_turns: int, teacher: str) -> dict:
        return make_record(self.task, self.turns, self.answer, self.queries, self.end, max_turns, teacher)


class Teacher(Protocol):
    name: str

    def decide(self, episodes: list[Episode]) -> list[str]: ...          # the next model turn of each

    def expand(self, episodes: list[Episode]) -> list[list[str]]: ...    # queries to run for the last search


def merge(result_lists: list[list], k: int) -> list:
    """Results of several queries as one list: by rank, first query first, each passage once."""
    out, seen = [], set()
    for rank in range(max((len(r) for r in result_lists), default=0)):
        for results in result_lists:
            if rank < len(results) and results[rank].id not in seen and len(out) < k:
                seen.add(results[rank].id)
                out.append(results[rank])
    return out


def teach(tasks: list[dict], teacher: Teacher, search, cfg: TeachConfig) -> list[Episode]:
    """Run the teacher on every task to the end; `search(queries, k, exclude_ids)` is batched."""
    episodes = [Episode(t) for t in tasks]
    live = list(episodes)
    while live:
        searching = []
        for e, text in zip(live, teacher.decide(live)):
            e.turns.append({"who": "model", "text": text})
            turn = parse_turn(text)
            if turn.kind == "answer":
                e.answer, e.end = turn.answer, "answer"
            elif turn.kind == "malformed":
                e.end = f"malformed: {turn.reason}"
            elif len(e.queries) >= cfg.max_turns:
                e.end = "max_turns"
            else:
                e.queries.append(turn.query)
                searching.append(e)
        if searching:
            query_lists = teacher.expand(searching)
            flat = [(i, q) for i, qs in enumerate(query_lists) for q in qs]
            excluded = [_source(searching[i].task) for i, _ in flat]
            hits = search([q for _, q in flat], k=cfg.topk, exclude_ids=excluded)
            per_episode: list[list] = [[] for _ in searching]
            for (i, _), found in zip(flat, hits):
                per_episode[i].append(found)
            for e, results in zip(searching, per_episode):
                info = information_turn(merge(results, cfg.topk), cfg.words_per_hit)
                e.turns.append({"who": "tool", "text": info})
                e.history.append((e.queries[-1], info))
        live = [e for e in live if not e.end]
    return episodes


def _source(task: dict) -> list[str]:
    source = task.get("metadata", {}).get("source_id")
    return [source] if source else []
