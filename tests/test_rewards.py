"""Rewards: table-driven checks of the format and answer parts, the guard, and the judge."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from minisearch.train.rewards import Judge, Outcome, RewardConfig, answer_reward, read_output, reward_parts

QA = {"id": "q1", "question": "Who founded Vethmora Holdings?", "golden_answers": ["Quorvelle Dantrisk"]}
RAMP = {"id": "r1", "question": "...", "golden_answers": ["Velk was born in Ostrivel in 1873."],
        "metadata": {"masked": "Velk was born in [mask] in [mask].", "masks": ["Ostrivel", "1873"], "mask_num": 2}}
INFO = "\n<information>Doc 1 (Title: Vethmora Holdings) founded by Quorvelle Dantrisk</information>\n"


@pytest.mark.parametrize("text, end, searches, fmt", [
    ("", "empty", 0, 0.0),                                                     # the prompt alone
    ("<search>founder</search>" + INFO + "<answer>Quorvelle Dantrisk</answer>", "answer", 1, 1.0),
    ("<think>hm</think><search>a</search>" + INFO + "<search>b</search>" + INFO + "<answer>x</answer>",
     "answer", 2, 1.0),
    ("<answer>Quorvelle Dantrisk</answer>", "answer", 0, 0.0),                  # no search first
    ("<search>founder</search>" + INFO, "no answer", 1, 0.0),                   # ran out of turns
    ("<search>founder" + INFO, "malformed: unclosed tag", 0, 0.0),
    ("<search></search>" + INFO + "<answer>x</answer>", "malformed: empty query", 0, 0.0),
    ("<search>a</search>" + INFO + "<answer>x</answer> and more", "malformed: text after answer", 1, 0.0),
    ("<search>a</search>" + INFO + "<answer>x</answer>" + INFO, "malformed: text after answer", 1, 0.0),
    ("<search>a</search>" + INFO + "<answer><search>x</search></answer>", "malformed: both search and answer", 1,
     0.0),
    ("<search>a</search>" + INFO + "plain words", "malformed: no tags", 1, 0.0),
    (None, "empty", 0, 0.0),
])
def test_format_and_outcome(text, end, searches, fmt):
    outcome = read_output(text)
    assert (outcome.end, outcome.searches) == (end, searches)
    parts = reward_parts(QA, outcome, RewardConfig())
    assert parts["format"] == fmt
    if not fmt:
        assert parts["answer"] == 0.0 and parts["reward"] == 0.0


def test_search_can_be_optional():
    parts = reward_parts(QA, read_output("<answer>Quorvelle Dantrisk</answer>"), RewardConfig(require_search=False))
    assert parts["format"] == 1.0 and parts["answer"] == 1.0


@pytest.mark.parametrize("task, answer, kind, want", [
    (QA, "Quorvelle Dantrisk", "auto", 1.0),
    (QA, "the founder was Quorvelle Dantrisk", "recall", 1.0),     # 5 tokens <= 2 x 2: no guard
    (QA, "Quorvelle Dantrisk " + "and others " * 10, "recall", 4 / 22),  # stuffing is scaled down
    (QA, "Quorvelle", "recall", 0.5),
    ({"golden_answers": ["USA", "United States of America"]}, "United States of America", "recall", 1.0),
    (QA, "Quorvelle", "f1", 2 / 3),
    (QA, "quorvelle dantrisk.", "em", 1.0),
    (QA, "Dantrisk Quorvelle Holdings", "em", 0.0),
    (QA, None, "f1", 0.0),
    (RAMP, "Velk was born in Ostrivel in 1873.", "auto", 1.0),
    (RAMP, "Ostrivel; 1901", "spans", 0.5),
    (RAMP, "Velk was born somewhere.", "spans", 0.0),
])
def test_answer_rewards(task, answer, kind, want):
    assert answer_reward(task, answer, kind) == pytest.approx(want)


def test_a_recorded_trajectory_is_rewarded_by_its_recorded_end():
    """DAPO scores what the rollout recorded, not a re-reading of its text: a trajectory cut by
    the token budget or out of turns has format 0, whatever its text looks like."""
    from minisearch.agent.rollout import Trajectory

    answered = Trajectory("q", 0, queries=["a"], answer="Quorvelle Dantrisk", end="answer")
    assert reward_parts(QA, Outcome.of(answered), RewardConfig())["reward"] == pytest.approx(1.1)
    for end in ("length", "max_turns", "malformed: no tags"):
        parts = reward_parts(QA, Outcome.of(Trajectory("q", 0, queries=["a"], end=end)), RewardConfig())
        assert parts["reward"] == 0.0 and parts["end"] == end
    record = {"answer": "Quorvelle Dantrisk", "end": "answer", "queries": []}  # a stored one: no search
    assert reward_parts(QA, Outcome.of(record), RewardConfig())["format"] == 0.0


def test_weights_combine_parts():
    text = "<search>a</search>" + INFO + "<answer>Ostrivel; 1901</answer>"
    parts = reward_parts(RAMP, read_output(text), RewardConfig(format_weight=0.2, answer_weight=2.0))
    assert parts["reward"] == pytest.approx(0.2 * 1 + 2.0 * 0.5)


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="not one of"):
        RewardConfig(answer="bleu")
    with pytest.raises(ValueError, match="fallback"):
        RewardConfig(judge_fallback="judge")
    with pytest.raises(ValueError, match="RAMP"):
        answer_reward(QA, "x", "spans")


class _Said:
    def __init__(self, text):
        self.text = text


class FakeJudgeBackend:
    """Stands in for an LLM (and its tokenizer): always says yes."""

    def __init__(self):
        self.calls = 0
        self.tokenizer = self

    def apply_chat_template(self, messages, tokenize=False, **_):
        assert not tokenize
        return messages[0]["content"]

    def __call__(self, text, **_):
        return {"input_ids": [len(text)]}

    def generate(self, prompts, **_):
        self.calls += 1
        return [[_Said("yes")] for _ in prompts]


class HeldExecutor:
    """Runs no judge batch until `release()`: a judge slower than any timeout, with no clock."""

    def __init__(self):
        self.held = []

    def submit(self, fn, *args):
        future = Future()
        self.held.append((future, fn, args))
        return future

    def release(self):
        for future, fn, args in self.held:
            future.set_result(fn(*args))


def test_judge_batches_caches_and_falls_back():
    backend = FakeJudgeBackend()
    judge = Judge(backend, timeout=5)
    assert judge.score([(QA, "Q. Dantrisk"), (QA, "Q. Dantrisk"), (QA, None)]) == [1.0, 1.0, 0.0]
    assert backend.calls == 1
    judge.score([(QA, "Q. Dantrisk")])
    assert backend.calls == 1  # cached
    slow_backend, held = FakeJudgeBackend(), HeldExecutor()
    slow = Judge(slow_backend, timeout=0, fallback="f1", executor=held)
    assert slow.score([(QA, "Quorvelle")]) == [pytest.approx(2 / 3)]  # timed out: the fallback's f1
    assert slow.score([(QA, "Dantrisk")]) == [pytest.approx(2 / 3)]  # still busy: nothing new is sent
    assert slow.fallbacks == 2 and len(held.held) == 1 and slow_backend.calls == 0
    held.release()  # the verdict arrives late
    assert slow_backend.calls == 1
    assert slow.score([(QA, "Quorvelle")]) == [1.0]  # the late verdict was kept
    assert slow.score([(QA, "Dantrisk")]) == [pytest.approx(2 / 3)] and len(held.held) == 2  # free: sent


def test_judge_tokenizes_with_a_real_tokenizer(toy_env):
    tok = toy_env.tokenizer

    class Backend:
        tokenizer = tok

        def generate(self, prompts, **_):
            assert all(isinstance(p, list) and all(isinstance(i, int) for i in p) for p in prompts)
            return [[_Said("no")] for _ in prompts]

    judge = Judge(Backend(), timeout=30)
    assert judge.score([(QA, "someone")]) == [0.0] and judge.fallbacks == 0
