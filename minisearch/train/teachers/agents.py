"""The multi-agent teacher (MaskSearch's agent-based bootstrap): three roles played by one model
through a backend, so any local model, or a bigger teacher model, can write trajectories.

- planner: reads the task, says what must be found, writes the first query;
- rewriter: turns each query into a few keyword queries; their results are merged by rank
  and shown as the one `<information>` block of that search;
- observer: reads the results so far and answers, or says what is missing and searches again
  (at most `max_turns` searches).

The trajectory records the planner's and the observer's turns as the model's turns (their
think/search/answer tags rewritten cleanly) and the merged results as the tool's turns; the
rewrites stay behind the scenes, so a student learns one query per search. All calls are
batched over the live episodes.
"""

from __future__ import annotations

import re

from minisearch.agent.protocol import STOP, parse_turn, write_turn
from minisearch.train.teachers import Episode, TeachConfig

PLANNER = ("You plan web-style searches over an encyclopedia for a research assistant. Read the task, say "
           "briefly what has to be found, then give the first search query (a few keywords). Reply exactly in "
           "the form <think>plan</think><search>query</search>.")
REWRITER = ("You rewrite a search query into {n} different short keyword queries that could find the same "
            "facts. Write one query per line and nothing else.")
OBSERVER = ("You read search results for a research assistant. If they hold everything the task needs, reply "
            "<think>which result says it</think><answer>the answer</answer>. If something is missing, say what "
            "and reply <think>what is missing</think><search>next query</search>. {left} searches are left.")
_NUMBERED = re.compile(r"^\s*(?:\d+[.):]|[-*•])\s*")
_SPECIAL = re.compile(r"<\|[^|<>]*\|>")  # chat-template markers such as <|im_end|>
_THOUGHT = re.compile(r"<think>.*?</think>", re.S)
PLAIN_QUERY_WORDS = 12


def canonical(text: str, plain: str = "") -> str:
    """A role's reply as a clean protocol turn (anything around the tags dropped).

    A small model often replies in plain words with no tags at all (SmolLM2-135M does nearly
    always); with `plain` ("search" for the planner, "answer" for the observer) such a reply is
    read as that kind of turn, the planner's first line as the query and the observer's whole
    reply as the answer, so the round still runs and its answers are judged like any other.

    >>> canonical("Ural Mountains, a range in Russia.<|im_end|>", plain="answer")
    '<answer> Ural Mountains, a range in Russia. </answer>'
    >>> canonical("<think>the range</think> Ural<|im_end|>", plain="search")
    '<think>the range</think><search> Ural </search>'
    """
    turn = parse_turn(text)
    if turn.kind == "malformed" and turn.reason == "no tags" and plain:
        reply = _SPECIAL.sub(" ", _THOUGHT.sub(" ", text)).strip()
        if plain == "search":  # a query is a few keywords: the first line, cut short
            reply = " ".join(reply.split("\n")[0].split()[:PLAIN_QUERY_WORDS])
        reply = " ".join(reply.split())
        return write_turn(plain, reply, turn.thought) if reply else text
    if turn.kind == "malformed":
        return text
    return write_turn(turn.kind, turn.query if turn.kind == "search" else turn.answer, turn.thought)


def rewrites(text: str, n: int) -> list[str]:
    """The first n queries of a rewriter's reply, one per line, numbering dropped.

    >>> rewrites("1. Vriogu river\\n2) Vriogu banks\\n\\n- river Vriogu", 2)
    ['Vriogu river', 'Vriogu banks']
    """
    lines = [_NUMBERED.sub("", ln).strip().strip('"') for ln in text.splitlines()]
    return [ln[:200] for ln in lines if ln and "<" not in ln][:n]


class AgentTeacher:
    def __init__(self, backend, cfg: TeachConfig, n_rewrites: int = 2, max_new_tokens: int = 256,
                 temperature: float = 0.3, name: str = "agents"):
        self.backend, self.cfg = backend, cfg
        self.n_rewrites, self.max_new_tokens, self.temperature = n_rewrites, max_new_tokens, temperature
        self.name = name

    def _chat(self, conversations: list[list[dict]], stop) -> list[str]:
        tok = self.backend.tokenizer
        prompts = [tok(tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"] for c in conversations]
        outs = self.backend.generate(prompts, n=1, max_new_tokens=self.max_new_tokens,
                                     temperature=self.temperature, stop=stop)
        return [group[0].text for group in outs]

    def decide(self, episodes: list[Episode]) -> list[str]:
        conversations, plain = [], []  # plain: how a reply without tags is read (planner, observer)
        for e in episodes:
            if not e.history:
                conversations.append([{"role": "system", "content": PLANNER},
                                      {"role": "user", "content": f"Task: {e.task['question']}"}])
                plain.append("search")
                continue
            found = "\n\n".join(f"Search: {q}\n{info.strip()}" for q, info in e.history)
            left = self.cfg.max_turns - len(e.queries)
            conversations.append([{"role": "system", "content": OBSERVER.format(left=left)},
                                  {"role": "user", "content": f"Task: {e.task['question']}\n\n{found}"}])
            plain.append("answer")
        return [canonical(text, kind) for text, kind in zip(self._chat(conversations, STOP), plain)]

    def expand(self, queries: list[str]) -> list[list[str]]:
        if self.n_rewrites <= 0:
            return [[q] for q in queries]
        system = REWRITER.format(n=self.n_rewrites)
        replies = self._chat([[{"role": "system", "content": system}, {"role": "user", "content": q}]
                              for q in queries], ())
        return [[q] + [r for r in rewrites(reply, self.n_rewrites) if r != q] for q, reply in zip(queries, replies)]
