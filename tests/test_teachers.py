"""Teachers: the scripted toy-world teacher and the multi-agent roles write valid, searched
trajectories; rejection keeps only right answers; stored trajectories render like live ones."""

from __future__ import annotations

import random

import pytest
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from helpers import results_shown  # noqa: E402

from minisearch.agent.protocol import parse_turn  # noqa: E402
from minisearch.agent.rollout import RolloutConfig, ScriptedGenerator, from_record, render, rollout, to_record  # noqa: E402
from minisearch.errors import UserError  # noqa: E402
from minisearch.ramp.tasks import make_task  # noqa: E402
from minisearch.records import passage_titles  # noqa: E402
from minisearch.search.hit import Hit  # noqa: E402
from minisearch.train.rewards import Outcome  # noqa: E402
from minisearch.train.teachers import TeachConfig, TeacherGenerator, merge, teach  # noqa: E402
from minisearch.train.teachers.agents import PLAIN_QUERY_WORDS, AgentTeacher, canonical, rewrites  # noqa: E402
from minisearch.train.teachers.scripted import ScriptedTeacher, mask_context  # noqa: E402
from minisearch.train.traj import judge  # noqa: E402


@pytest.fixture(scope="module")
def env(toy_env):
    """The toy world's tools, its RAMP tasks (recoverable spans only) and its passage titles."""
    world, searcher, tok, _ = toy_env
    rng = random.Random(0)
    ramp = [t for p in world.passages for t in [make_task(p, rng.choice([1, 2]), rng, searcher=searcher)[0]] if t]
    return world, searcher, tok, ramp, passage_titles(world.passages)


def records(trajs, tasks, cfg):
    """The teacher's trajectories as the traj stage stores them, with their tasks."""
    by_id = {t["id"]: t for t in tasks}
    assert [t.task_id for t in trajs] == [t["id"] for t in tasks]
    return [(to_record(t, by_id[t.task_id], cfg.max_turns, "teacher"), by_id[t.task_id]) for t in trajs]


def seen(record) -> str:
    return "\n".join(t["text"] for t in record["turns"] if t["who"] == "tool")


def accepted(record, task) -> bool:
    return judge(task, Outcome.of(record), 0.8)[0]


def check_valid(record, task, cfg):
    """Model turns parse; tools follow every search; the answer is last; the source never shows."""
    whos = [t["who"] for t in record["turns"]]
    assert whos[0] == "model" and whos[-1] == "model" and whos.count("tool") == len(record["queries"])
    for i, turn in enumerate(record["turns"]):
        if turn["who"] == "model":
            kind = parse_turn(turn["text"]).kind
            assert kind == ("answer" if i == len(record["turns"]) - 1 else "search")
        else:
            assert turn["text"].startswith("\n<information>") and turn["text"].count("Doc ") <= cfg.topk
    source = task.get("metadata", {}).get("source_id")
    if source:  # the source's own text (the gold paragraph), not just its title: its records share that
        text = task["golden_answers"][0][:80]
        assert all(text not in t["text"] for t in record["turns"] if t["who"] == "tool")


@pytest.mark.parametrize("form", ["paragraph", "spans"])
def test_scripted_ramp_teacher_searches_and_is_right_when_the_index_is(env, form):
    world, searcher, tok, ramp, _ = env
    cfg = TeachConfig(answer_form=form)
    done = records(teach(ramp, ScriptedTeacher(cfg), searcher.search, tok, cfg), ramp, cfg)
    right = 0
    for record, task in done:
        check_valid(record, task, cfg)
        assert 1 <= len(record["queries"]) <= cfg.max_turns and record["end"] == "answer"
        ok = accepted(record, task)
        seen_all = all(span in seen(record) for span in task["metadata"]["masks"])
        assert ok == seen_all, (task["metadata"]["masks"], record["answer"])
        right += ok
        if form == "paragraph" and ok:
            assert record["answer"] == task["golden_answers"][0]
    assert 0.15 * len(done) < right < len(done)


def test_scripted_teacher_fails_when_the_index_does(env):
    world, _, tok, ramp, names = env
    cfg = TeachConfig()

    def nothing(queries, k, exclude_ids=None):
        return [[] for _ in queries]
    tasks = ramp[:20] + world.qa["train"][:20]
    done = records(teach(tasks, ScriptedTeacher(cfg, names), nothing, tok, cfg), tasks, cfg)
    assert all(not accepted(record, task) for record, task in done)
    assert all("unknown" in record["answer"] for record, _ in done)


def test_scripted_qa_teacher_follows_the_hops(env):
    world, searcher, tok, _, names = env
    cfg = TeachConfig()
    tasks = world.qa["train"][:120]
    done = records(teach(tasks, ScriptedTeacher(cfg, names), searcher.search, tok, cfg), tasks, cfg)
    results = [accepted(record, task) for record, task in done]
    assert sum(results) > 0.7 * len(tasks)
    for (record, task), ok in zip(done, results):
        check_valid(record, task, cfg)
        hops = task["metadata"]["source_ids"]
        if ok:  # the question as asked first, then the title of each further passage, in hop order
            assert record["queries"] == [task["question"]] + [names[h] for h in hops[1:]]
    with pytest.raises(UserError, match="agents teacher"):
        teach([{"id": "q", "question": "Who?", "golden_answers": ["x"], "metadata": {}}],
              ScriptedTeacher(cfg, names), searcher.search, tok, cfg)
    with pytest.raises(UserError, match="--corpus"):
        teach(tasks[:1], ScriptedTeacher(cfg, {}), searcher.search, tok, cfg)


def test_a_teacher_reads_the_context_a_model_reads(env):
    """The teacher's view of a context is the task whose prompt it starts with and the
    searches and results after it, however many tasks share the batch."""
    world, searcher, tok, ramp, names = env
    tasks = world.qa["train"][:6]
    cfg = TeachConfig()
    trajs = teach(tasks, ScriptedTeacher(cfg, names), searcher.search, tok, cfg)
    reader = TeacherGenerator(ScriptedTeacher(cfg, names), tok, tasks + ramp[:6], cfg.max_turns)
    for traj, task in zip(trajs, tasks):
        context = tok.decode([i for s in traj.segments[:-1] for i in s.token_ids], skip_special_tokens=False)
        view = reader.episode(context)
        tools = [s.text.strip() for s in traj.segments if s.who == "tool"]
        assert view.task is task and view.queries == traj.queries and [b for _, b in view.history] == tools
    with pytest.raises(ValueError, match="none of the tasks' prompts"):
        reader.episode("<|im_start|>system\nsomething else")


def test_the_token_budget_ends_a_teachers_trajectory_as_a_models(env):
    world, searcher, tok, ramp, names = env
    cfg = TeachConfig(max_tokens=300)  # the prompt and one result block at most
    done = records(teach(ramp[:10], ScriptedTeacher(cfg), searcher.search, tok, cfg), ramp[:10], cfg)
    assert {record["end"] for record, _ in done} == {"length"}
    assert not any(accepted(record, task) for record, task in done)


def test_mask_context_skips_other_masks():
    assert mask_context("A [mask] b c [mask] d e f.", 1) == ("A b c", "d e")
    assert mask_context("[mask] starts here.", 0) == ("", "starts here")


@pytest.mark.parametrize(("task", "answer", "end", "searches", "accepted"), [
    ({"golden_answers": ["Ostrivel"], "metadata": {}}, "ostrivel", "answer", 1, True),
    ({"golden_answers": ["Ostrivel"], "metadata": {}}, "ostrivel", "answer", 0, False),       # no search
    ({"golden_answers": ["Ostrivel"], "metadata": {}}, "Vriogu", "answer", 1, False),         # wrong
    ({"golden_answers": ["the Ostrivel city"], "metadata": {}}, "Ostrivel city", "answer", 2, True),
    ({"golden_answers": ["Ostrivel"], "metadata": {}}, None, "malformed: no tags", 1, False),
    ({"golden_answers": ["A b c."], "metadata": {"masked": "A [mask] c.", "masks": ["b"]}}, "A b c.", "answer", 1,
     True),
    ({"golden_answers": ["A b c d."], "metadata": {"masked": "A [mask] c [mask].", "masks": ["b", "d"]}}, "b; e",
     "answer", 1, False),                                                                     # one span of two
])
def test_rejection(task, answer, end, searches, accepted):
    assert judge(task, Outcome(answer, end, searches), 0.8)[0] is accepted


def test_merge_by_rank_each_passage_once():
    a = [Hit("1", "A", "", 3.0), Hit("2", "B", "", 2.0)]
    b = [Hit("2", "B", "", 9.0), Hit("3", "C", "", 1.0)]
    assert [h.id for h in merge([a, b], 3)] == ["1", "2", "3"]
    assert [h.id for h in merge([a, b], 2)] == ["1", "2"]
    assert merge([], 3) == []


ROLE_MARKS = {"rewriter": "rewrite a search query", "planner": "plan web-style searches"}  # else: observer
TAGGED = {"rewriter": "1. first rewrite\n2) second rewrite\n3. third",
          "planner": "Plan first. <think>find the page</think><search>{question}</search> trailing",
          "observer": "<think>Doc 1 says it</think><answer>{gold}</answer>"}
# a small chat model's way with the roles (SmolLM2-135M's): plain words, never a tag
PLAIN = {"rewriter": "another query", "planner": "{question} is what we need to find out today\nThen read.<|im_end|>",
         "observer": "{gold}<|im_end|>"}


class RoleBackend:
    """A stand-in for an LLM that plays the roles by reading its prompts (the roles' code is real),
    replying with `replies[role]` filled with the question and its gold answer."""

    def __init__(self, tok, gold: dict[str, str], replies: dict = TAGGED):
        self.tokenizer, self.gold, self.replies, self.prompts = tok, gold, replies, []

    def generate(self, prompts, n=1, max_new_tokens=128, temperature=1.0, stop=(), **_):
        def script(context):
            self.prompts.append(context)
            question = next(q for q in self.gold if q in context)
            role = next((r for r, mark in ROLE_MARKS.items() if mark in context), "observer")
            return self.replies[role].format(question=question, gold=self.gold[question])
        return ScriptedGenerator(self.tokenizer, script)(prompts, n=n, max_new_tokens=max_new_tokens, stop=stop)


def test_agent_teacher_plans_rewrites_and_observes(env):
    world, searcher, tok, _, _ = env
    tasks = [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:8]
    backend = RoleBackend(tok, {t["question"]: t["golden_answers"][0] for t in tasks})
    cfg = TeachConfig()
    calls = []

    def search(queries, k, exclude_ids=None):
        calls.append(list(queries))
        return searcher.search(queries, k=k, exclude_ids=exclude_ids)
    done = records(teach(tasks, AgentTeacher(backend, cfg, n_rewrites=2), search, tok, cfg), tasks, cfg)
    assert len(calls) == 1 and len(calls[0]) == 3 * len(tasks)  # each query and its two rewrites, one batch
    assert calls[0][1:3] == ["first rewrite", "second rewrite"]
    for record, task in done:
        check_valid(record, task, cfg)
        assert record["turns"][0]["text"] == f"<think>find the page</think><search> {task['question']} </search>"
        assert accepted(record, task)
    assert sum("plan web-style" in p for p in backend.prompts) == len(tasks)
    assert sum("read search results" in p for p in backend.prompts) == len(tasks)


def test_plain_replies_are_read_as_the_roles_turns(env):
    """The planner's untagged reply is its query (first line, cut to a few words), the observer's
    its answer: the round runs and is judged instead of ending every episode malformed."""
    world, searcher, tok, _, _ = env
    tasks = [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:4]
    backend = RoleBackend(tok, {t["question"]: t["golden_answers"][0] for t in tasks}, PLAIN)
    cfg = TeachConfig()
    done = records(teach(tasks, AgentTeacher(backend, cfg, n_rewrites=1), searcher.search, tok, cfg), tasks, cfg)
    for record, task in done:
        check_valid(record, task, cfg)
        query = " ".join(f"{task['question']} is what we need to find out today".split()[:PLAIN_QUERY_WORDS])
        assert record["turns"][0]["text"] == f"<search> {query} </search>"
        assert record["end"] == "answer" and record["answer"] == task["golden_answers"][0]


def test_canonical_and_rewrites_take_hostile_text():
    assert canonical("<search>x</search>") == "<search> x </search>"
    assert canonical("junk <answer>") == "junk <answer>"
    assert rewrites("<search>no</search>\n\n  - ok \n", 3) == ["ok"]


def test_a_stored_trajectory_renders_like_the_live_one(env):
    world, searcher, tok, ramp, _ = env
    task = ramp[0]

    def script(context):
        if not results_shown(context):
            return f"<think>go</think><search>{task['metadata']['title']}</search>"
        return "<think>done</think><answer>x; y</answer>"
    traj = rollout([task], ScriptedGenerator(tok, script), searcher.search, tok, RolloutConfig())[0]
    record = to_record(traj, task, 4, "test", reward={"format": 1.0})
    again = from_record(tok, record)
    assert render(again) == render(traj)
    assert record["teacher"] == "test" and record["reward"] == {"format": 1.0}
    with pytest.raises(ValueError, match="'model' or 'tool'"):
        from_record(tok, {**record, "turns": [{"who": "user", "text": "x"}]})
