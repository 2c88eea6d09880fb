"""Rewards: pure functions of (task, outcome), combined by recipe weights. The outcome is what
the rollout recorded (`Outcome.of(trajectory)`: its end, answer and searches), or an output
known only as text read by the same stop conditions (`read_output`, for veRL).

    reward = w_format * format + w_answer * answer        (each part in [0, 1])

`format` is 1 when the output parses turn by turn, ends with one answer and nothing after
it, and searched at least once where the recipe asks; otherwise 0, and so is the answer
part: the prompt alone, a malformed turn or a run out of turns scores 0. `answer` is, by
the recipe's choice:
    spans   the share of a RAMP task's masks filled with the original span (span-level EM)
    recall  token recall of the gold answer (the paper's metric), times the length guard
    f1, em  SQuAD-normalised F1 / exact match
    judge   an LLM's yes/no through a backend (`Judge`: batched, cached, timed out -> fallback)
`auto` is spans for RAMP tasks and recall for QA. The length guard keeps recall from being
gamed by long answers: an answer with more than `guard` times the gold's tokens has its
recall scaled by guard * |gold| / |answer|.

>>> task = {"golden_answers": ["Vethmora Holdings"]}
>>> out = "<search>founder</search>\\n<information>Doc 1 ...</information>\\n<answer>Vethmora Holdings</answer>"
>>> parts = reward_parts(task, read_output(out), RewardConfig())
>>> parts["format"], parts["answer"], parts["reward"]
(1.0, 1.0, 1.1)
>>> reward_parts(task, read_output(""), RewardConfig())["reward"]
0.0
>>> guarded_recall("Vethmora Holdings and every other company in the city", ["Vethmora Holdings"], guard=2.0)
0.5
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from minisearch.agent.protocol import parse_turn, split_context, turn_end
from minisearch.metrics import exact_match, f1, is_ramp, normalize_answer, ramp_spans_correct, token_recall
from minisearch.settings import Settings, setting

ANSWER_KINDS = ("auto", "spans", "recall", "f1", "em", "judge")


@dataclass
class RewardConfig(Settings):
    format_weight: float = setting(0.1, help="Weight of the format part.", min=0.0)
    answer_weight: float = setting(1.0, help="Weight of the answer part.", min=0.0)
    answer: str = setting("auto", choices=ANSWER_KINDS,
                          help="The answer part: auto (spans for RAMP tasks, guarded recall for QA), spans, recall, "
                               "f1, em, or judge (an LLM, judge_model).")
    require_search: bool = setting(True, help="An answer before any search has a format of 0.")
    guard: float = setting(2.0, help="Length guard on recall (<= 0: off).")
    judge_fallback: str = setting("f1", choices=ANSWER_KINDS[:-1],
                                  help="The answer part when the judge is missing or too slow.")


@dataclass(frozen=True)
class Outcome:
    """What an output amounts to: its final answer (or None), how it ended, searches made."""

    answer: str | None
    end: str
    searches: int

    @classmethod
    def of(cls, trajectory) -> Outcome:
        """The outcome a rollout recorded (a `Trajectory`, or its record as a dict)."""
        if isinstance(trajectory, dict):
            return cls(trajectory.get("answer"), trajectory.get("end", ""), len(trajectory.get("queries", [])))
        return cls(trajectory.answer, trajectory.end, trajectory.searches)


def read_output(text) -> Outcome:
    """The outcome of an output known only as text (veRL's): its model turns and the tool
    blocks between them, read turn by turn with the protocol's stop conditions (the turn
    limit is the caller's)."""
    if not isinstance(text, str) or not text.strip():
        return Outcome(None, "empty", 0)
    turns, _ = split_context(text)
    searches = 0
    for i, piece in enumerate(turns):
        last = i == len(turns) - 1
        if i and last and not piece.strip():
            break  # it ended on search results: out of turns or tokens
        turn = parse_turn(piece)
        end = turn_end(turn, searches, max_turns=None)
        if end == "answer" and not last:  # results after the answer: text after it
            return Outcome(None, "malformed: text after answer", searches)
        if end:
            return Outcome(turn.answer if end == "answer" else None, end, searches)
        searches += 1
    return Outcome(None, "no answer", searches)


def format_reward(outcome: Outcome, require_search: bool = True) -> float:
    """1 for a well-formed output that ends with an answer (after a search, if required)."""
    return float(outcome.end == "answer" and (outcome.searches >= 1 or not require_search))


def guarded_recall(answer: str | None, golds, guard: float = 2.0) -> float:
    """Token recall, scaled down when the answer is more than `guard` times the gold's length
    (per gold answer; the best gold counts)."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    if answer is None or guard <= 0:
        return token_recall(answer, golds)
    pred_len = max(1, len(normalize_answer(answer).split()))
    return max((token_recall(answer, [g]) * min(1.0, guard * len(normalize_answer(g).split()) / pred_len)
                for g in golds), default=0.0)


def answer_reward(task: dict, answer: str | None, kind: str = "auto", guard: float = 2.0) -> float:
    """The answer part, in [0, 1], for any kind but `judge` (see `Judge`)."""
    if answer is None:
        return 0.0
    if kind == "auto":
        kind = "spans" if is_ramp(task) else "recall"
    if kind == "spans":
        if not is_ramp(task):
            raise ValueError(f"task {task.get('id')!r} has no masks: the spans reward is for RAMP tasks")
        ok = ramp_spans_correct(task, answer)
        return sum(ok) / len(ok) if ok else 0.0
    golds = task["golden_answers"]
    if kind == "recall":
        return guarded_recall(answer, golds, guard)
    if kind == "f1":
        return f1(answer, golds)
    if kind == "em":
        return exact_match(answer, golds)
    raise ValueError(f"answer reward {kind!r} needs a judge: use Judge.score")


def reward_parts(task: dict, outcome: Outcome, cfg: RewardConfig, judged: float | None = None) -> dict:
    """{format, answer, reward, end, searches} of one output (`Outcome.of(trajectory)`, or
    `read_output(text)`); `judged`: the judge's answer score."""
    fmt = format_reward(outcome, cfg.require_search)
    if not fmt:
        answer = 0.0
    elif cfg.answer == "judge":
        answer = judged if judged is not None else answer_reward(task, outcome.answer, cfg.judge_fallback, cfg.guard)
    else:
        answer = answer_reward(task, outcome.answer, cfg.answer, cfg.guard)
    total = cfg.format_weight * fmt + cfg.answer_weight * answer
    return {"format": fmt, "answer": round(answer, 4), "reward": round(total, 4), "end": outcome.end,
            "searches": outcome.searches, "prediction": outcome.answer}


JUDGE_PROMPT = ("Question: {question}\nGold answer(s): {gold}\nPredicted answer: {pred}\n"
                "Does the predicted answer say the same as the gold answer? Reply yes or no.")


class Judge:
    """An LLM judge through a backend's `generate`: one batch per call, verdicts cached by
    (question, golds, prediction). A batch that takes longer than `timeout` seconds (or
    fails) is scored by the fallback metric, counted in `fallbacks`; while it is still
    running no other batch is sent (the backend is not shared between threads), and its
    verdicts are cached when they arrive. `executor` runs the batches (default: one worker
    thread); a test passes one that holds them, to play a slow judge without a clock."""

    def __init__(self, backend, timeout: float = 60.0, fallback: str = "f1", max_new_tokens: int = 4,
                 executor=None):
        self.backend, self.timeout, self.fallback = backend, timeout, fallback
        self.max_new_tokens = max_new_tokens
        self.cache: dict[tuple[str, str, str], float] = {}
        self.fallbacks = 0
        self._pool = executor or ThreadPoolExecutor(max_workers=1)
        self._pending = None

    def score(self, items: list[tuple[dict, str | None]]) -> list[float]:
        """Scores in [0, 1] for (task, predicted answer) pairs; None answers score 0."""
        keys = [(t["question"], " | ".join(map(str, t["golden_answers"])), p) if p is not None else None
                for t, p in items]
        todo = sorted({k for k in keys if k is not None and k not in self.cache})
        if todo and (self._pending is None or self._pending.done()):
            self._pending = self._pool.submit(self._ask, todo)
            self._pending.add_done_callback(lambda f, todo=todo: self._keep(todo, f))
            try:
                self._pending.result(timeout=self.timeout)
            except Exception:  # a timeout, or a broken judge: neither may stop training
                pass
        by_key = {k: t for k, (t, _) in zip(keys, items)}
        out = []
        for k in keys:
            if k is None:
                out.append(0.0)
            elif k in self.cache:
                out.append(self.cache[k])
            else:
                self.fallbacks += 1
                out.append(answer_reward(by_key[k], k[2], self.fallback))
        return out

    def _keep(self, todo, future) -> None:
        if not future.cancelled() and future.exception() is None:
            self.cache.update(zip(todo, future.result()))

    def _ask(self, keys: list[tuple[str, str, str]]) -> list[float]:
        tok = self.backend.tokenizer
        texts = [tok.apply_chat_template([{"role": "user", "content": JUDGE_PROMPT.format(question=q, gold=g, pred=p)}],
                                         tokenize=False, add_generation_prompt=True) for q, g, p in keys]
        prompts = [tok(text, add_special_tokens=False)["input_ids"] for text in texts]
        outs = self.backend.generate(prompts, n=1, max_new_tokens=self.max_new_tokens, temperature=0.0)
        return [float(o[0].text.strip().lower().startswith("yes")) for o in outs]
