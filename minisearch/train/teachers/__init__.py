"""Teachers: whoever writes the trajectories that SFT imitates, as the generator of `rollout`.

A teacher writes the model's turns of the very loop that samples the student
(`agent.rollout`), so its trajectories stop, exclude their source passage, show results and
count tokens exactly as the student's will. `TeacherGenerator` is rollout's `generate`: it
reads each context as a model would (which task's prompt it starts with, the searches made
and the results shown since) and asks the teacher for every live episode's next turn at
once (`decide`). `teacher_search` is rollout's `search`: each query with the teacher's
rewrites (`expand`), run as one batch, merged by rank into one result block.

- `scripted.ScriptedTeacher`: knows the toy world (RAMP masks, QA entities), plans the
  right queries and answers only from what the searches returned.
- `agents.AgentTeacher`: the paper's multi-agent teacher, planner / rewriter / observer
  roles played by any model through a backend.

    trajs = teach(tasks, ScriptedTeacher(cfg), searcher.search, tokenizer, cfg)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from minisearch.agent.backends import per_prompt
from minisearch.agent.protocol import STOP, parse_turn, split_context
from minisearch.agent.rollout import RolloutConfig, Trajectory, completion, prompt_ids, rollout
from minisearch.settings import Settings, setting

ANSWER_FORMS = ("paragraph", "spans")


@dataclass
class TeachConfig(Settings):
    max_turns: int = setting(4, help="Searches per episode.", min=1)
    topk: int = setting(3, help="Passages shown per search.", min=1)
    words_per_hit: int = setting(80, help="Words shown of each passage.", min=1)
    answer_form: str = setting("paragraph", choices=ANSWER_FORMS,
                               help="How RAMP answers are written: the whole paragraph (the paper's) or the spans "
                                    "as 'a; b'.")
    max_tokens: int = setting(4096, help="Token budget of a trajectory in the student's tokens (longer ones end "
                                         "as `length` and are rejected).", min=64)

    def rollout(self) -> RolloutConfig:
        """The rollout settings a teacher's episodes run under (a turn may use the whole budget)."""
        return RolloutConfig(max_turns=self.max_turns, topk=self.topk, words_per_hit=self.words_per_hit,
                             max_new_tokens=self.max_tokens, max_total_tokens=self.max_tokens, temperature=0.0)


@dataclass
class Episode:
    """What a teacher sees of one live trajectory: its task and the searches so far."""

    task: dict
    queries: list[str] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)  # (query, its <information> block)

    @property
    def seen(self) -> str:
        """Everything the searches have shown so far."""
        return "\n".join(info for _, info in self.history)


class Teacher(Protocol):
    name: str

    def decide(self, episodes: list[Episode]) -> list[str]: ...      # the next model turn of each

    def expand(self, queries: list[str]) -> list[list[str]]: ...     # the queries to run for each search


def merge(result_lists: list[list], k: int) -> list:
    """Results of several queries as one list: by rank, first query first, each passage once."""
    out, seen = [], set()
    for rank in range(max((len(r) for r in result_lists), default=0)):
        for results in result_lists:
            if rank < len(results) and results[rank].id not in seen and len(out) < k:
                seen.add(results[rank].id)
                out.append(results[rank])
    return out


class TeacherGenerator:
    """A teacher as rollout's `generate`: contexts in, the teacher's next turns out, in the
    tokenizer's tokens and cut at the stop strings as a model's would be."""

    def __init__(self, teacher: Teacher, tokenizer, tasks: list[dict], max_turns: int):
        self.teacher, self.tokenizer = teacher, tokenizer
        self.by_prompt = {self._text(prompt_ids(tokenizer, t, max_turns)[0]): t for t in tasks}
        self.lengths = sorted({len(p) for p in self.by_prompt}, reverse=True)

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def episode(self, context: str) -> Episode:
        """The task whose prompt the context starts with, and the searches and results after it."""
        for n in self.lengths:
            task = self.by_prompt.get(context[:n])
            if task is not None:
                break
        else:
            raise ValueError("the context starts with none of the tasks' prompts")
        turns, blocks = split_context(context[n:])
        queries = [parse_turn(turn).query for turn in turns[:len(blocks)]]
        return Episode(task, queries, list(zip(queries, blocks)))

    def __call__(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int | list[int] = 128, stop=STOP, **_):
        episodes = [self.episode(self._text(ids)) for ids in prompts]
        return [[completion(self.tokenizer, text, limit, stop)]
                for text, limit in zip(self.teacher.decide(episodes), per_prompt(max_new_tokens, prompts))]


def teacher_search(teacher: Teacher, search):
    """Rollout's `search` for a teacher: every query with its rewrites as one batch (each
    keeps its task's exclusions), the results of each search merged by rank."""
    def run(queries: list[str], k: int, exclude_ids=None) -> list[list]:
        flat = [(i, q) for i, qs in enumerate(teacher.expand(queries)) for q in qs]
        excluded = [exclude_ids[i] if exclude_ids else [] for i, _ in flat]
        hits = search([q for _, q in flat], k=k, exclude_ids=excluded)
        per_search: list[list] = [[] for _ in queries]
        for (i, _), found in zip(flat, hits):
            per_search[i].append(found)
        return [merge(results, k) for results in per_search]

    return run


def teach(tasks: list[dict], teacher: Teacher, search, tokenizer, cfg: TeachConfig) -> list[Trajectory]:
    """Every task's trajectory by the teacher, through rollout; `search(queries, k, exclude_ids)`."""
    return rollout(tasks, TeacherGenerator(teacher, tokenizer, tasks, cfg.max_turns), teacher_search(teacher, search),
                   tokenizer, cfg.rollout())
