"""Rollouts: scripted and tiny-model agents search the toy world; masks are exact; bad turns end cleanly."""

from __future__ import annotations

import pytest
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from helpers import results_shown  # noqa: E402

from minisearch.agent.rollout import RolloutConfig, ScriptedGenerator, prompt_ids, render, rollout  # noqa: E402


def one_hop(world, n):
    return [t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop"][:n]


def oracle(world):
    """Searches the question, then answers with the gold answer."""
    gold = {t["question"]: t["golden_answers"][0] for rows in world.qa.values() for t in rows}

    def script(context):
        question = next(q for q in gold if q in context)
        if not results_shown(context):
            return f"<think>find it</think><search>{question}</search> ignored"
        return f"<think>found</think><answer>{gold[question]}</answer>"
    return script


def test_scripted_agent_searches_and_answers_with_exact_masks(toy_env):
    world, searcher, tok, _ = toy_env
    tasks = one_hop(world, 6)
    trajs = rollout(tasks, ScriptedGenerator(tok, oracle(world)), searcher.search, tok, RolloutConfig(group=2))
    assert len(trajs) == 12 and [t.task_id for t in trajs[:2]] == [tasks[0]["id"]] * 2
    titles = {p["id"]: p["contents"].split("\n")[0] for p in world.passages}
    for traj, task in zip(trajs, [t for t in tasks for _ in range(2)]):
        assert traj.end == "answer" and traj.searches == 1 and traj.answer == task["golden_answers"][0]
        assert [s.who for s in traj.segments] == ["prompt", "model", "tool", "model"]
        assert titles[task["metadata"]["source_ids"][0]] in traj.segments[2].text  # search found the page
        ids, mask = render(traj)
        assert ids == traj.ids and len(mask) == len(ids)
        model_ids = [i for i, m in zip(ids, mask) if m]
        assert model_ids == traj.segments[1].token_ids + traj.segments[3].token_ids
        assert tok.decode(model_ids) == traj.segments[1].text + traj.segments[3].text
        cut = len(traj.segments[0].token_ids) + len(traj.segments[1].token_ids)
        assert tok.convert_ids_to_tokens(ids[cut - 1]) == "</search>" and mask[cut - 1] == 1
        assert mask[cut] == 0 and tok.decode(ids[cut:cut + 3]).startswith("\n<information>")
        assert sum(mask[: len(traj.segments[0].token_ids)]) == 0  # no prompt token is a target
        assert "ignored" not in traj.completion_text()  # text after the stop tag is never kept


def test_source_passage_is_excluded(toy_env):
    world, searcher, tok, _ = toy_env
    source = world.passages[7]
    title = source["contents"].split("\n")[0]
    task = {"id": "ramp-1", "question": f"Fill the masks about {title}.", "golden_answers": ["x"],
            "metadata": {"source_id": source["id"]}}
    script = ScriptedGenerator(tok, lambda ctx: f"<search>{title}</search>" if not results_shown(ctx)
                               else "<answer>x</answer>")
    traj = rollout([task], script, searcher.search, tok, RolloutConfig())[0]
    tool = traj.segments[2].text
    assert "Doc 1" in tool and source["contents"].split("\n", 1)[1][:80] not in tool  # its records may show


BAD = ["no tags at all", "<search>   </search>", "<answer>never closed", "<information>x</information>",
       "<search>a<search>b</search>", "<answer></answer>", "word " * 300]


def test_malformed_turns_end_trajectories_without_crashing_the_batch(toy_env):
    world, searcher, tok, _ = toy_env
    tasks = [{"id": f"t{i}", "question": f"q{i}", "golden_answers": ["x"], "metadata": {}} for i in range(len(BAD) + 1)]
    replies = {f"q{i}": r for i, r in enumerate(BAD)} | {f"q{len(BAD)}": "<answer>fine</answer>"}

    def script(ctx):
        return next(r for q, r in replies.items() if f"{q}<|im_end|>" in ctx)
    trajs = rollout(tasks, ScriptedGenerator(tok, script), searcher.search, tok, RolloutConfig(max_new_tokens=64))
    ends = [t.end for t in trajs]
    assert ends[:6] == ["malformed: no tags", "malformed: empty query", "malformed: unclosed tag",
                        "malformed: information tag written by the model", "malformed: nested tags",
                        "malformed: empty answer"]
    assert ends[6] == "malformed: no tags" and len(trajs[6].segments[1].token_ids) == 64  # runaway, cut
    assert ends[7] == "answer" and trajs[7].answer == "fine"


def test_turn_and_token_limits(toy_env):
    world, searcher, tok, _ = toy_env
    task = one_hop(world, 1)
    always = ScriptedGenerator(tok, lambda ctx: "<search>river</search>")
    cfg = RolloutConfig(max_turns=2, words_per_hit=20, max_total_tokens=8000)
    traj = rollout(task, always, searcher.search, tok, cfg)[0]
    assert traj.end == "max_turns" and traj.searches == 2
    short = rollout(task, always, searcher.search, tok, RolloutConfig(max_turns=9, max_total_tokens=400))[0]
    assert short.end == "length" and len(short.ids) <= 400


def test_batch_of_64_rollouts_with_searches(toy_env):
    world, searcher, tok, _ = toy_env
    tasks = one_hop(world, 8)
    trajs = rollout(tasks, ScriptedGenerator(tok, oracle(world)), searcher.search, tok, RolloutConfig(group=8))
    assert len(trajs) == 64 and all(t.end == "answer" and t.searches == 1 for t in trajs)


def test_tiny_model_rollouts_complete(toy_env):
    world, searcher, _, root = toy_env
    from minisearch.agent.backends.cpu import CpuBackend

    backend = CpuBackend(root / "model", lora_rank=4)
    cfg = RolloutConfig(group=4, max_new_tokens=24, max_total_tokens=400)
    trajs = rollout(one_hop(world, 4), backend.generate, searcher.search, backend.tokenizer, cfg)
    assert len(trajs) == 16 and all(t.end for t in trajs)
    for t in trajs:
        ids, mask = render(t)
        model = [s for s in t.segments if s.who == "model"]
        assert sum(mask) == sum(len(s.token_ids) for s in model)
        assert all(len(s.logprobs) == len(s.token_ids) for s in model)


def test_each_trajectory_asks_for_what_its_context_has_left(toy_env):
    """One limit per live trajectory: min(max_new_tokens, max_total_tokens - its length). A long
    context gets fewer new tokens than a short one in the same call, and none runs past the budget."""
    world, searcher, tok, _ = toy_env

    def task(tid, question):
        return {"id": tid, "question": question, "golden_answers": ["x"], "metadata": {}}
    long_question = "Which river is it?"
    while len(prompt_ids(tok, task("long", long_question), 2)[0]) < 500:  # 60 tokens short of the budget
        long_question = "and which city " + long_question
    tasks = [task("short", "Which river?"), task("long", long_question)]
    script = ScriptedGenerator(tok, lambda ctx: "<search>river</search>" if not results_shown(ctx)
                               else "<answer>" + "x " * 80 + "</answer>")
    calls = []

    def recording(prompts, max_new_tokens, **kw):
        calls.append([(len(p), m) for p, m in zip(prompts, max_new_tokens)])
        return script(prompts, max_new_tokens=max_new_tokens, **kw)

    cfg = RolloutConfig(max_turns=2, max_new_tokens=64, max_total_tokens=560, words_per_hit=20)
    trajs = rollout(tasks, recording, searcher.search, tok, cfg)
    for call in calls:
        assert all(m == min(64, 560 - n) and m >= 1 for n, m in call)
    first = dict(zip(["short", "long"], calls[0]))
    assert first["short"][1] == 64 and first["long"][1] < 64, calls[0]  # same call, different limits
    assert all(len(t.ids) <= 560 for t in trajs)


def test_tiny_model_per_trajectory_limits_never_fail(toy_env):
    """The cpu backend honours one limit per prompt: a context near the budget gets a few
    tokens, the rest their max_new_tokens, in one batch."""
    world, searcher, _, root = toy_env
    from minisearch.agent.backends.cpu import CpuBackend

    backend = CpuBackend(root / "model", lora_rank=4)
    tok = backend.tokenizer
    short, long = tok("The river")["input_ids"], tok("The river " * 60)["input_ids"]
    outs = backend.generate([short, long], n=2, max_new_tokens=[12, 2], temperature=1.0)
    assert all(len(c.token_ids) <= 12 for c in outs[0]) and all(len(c.token_ids) <= 2 for c in outs[1])
    assert all(len(c.logprobs) == len(c.token_ids) for group in outs for c in group)
    tasks = one_hop(world, 2)
    longest = max(len(prompt_ids(tok, t, 4)[0]) for t in tasks)
    cfg = RolloutConfig(group=2, max_new_tokens=24, max_total_tokens=longest + 30)
    trajs = rollout(tasks, backend.generate, searcher.search, tok, cfg)
    assert all(t.end and len(t.ids) <= cfg.max_total_tokens for t in trajs)


def test_a_sampler_context_below_the_budget_is_refused_at_once(toy_env):
    from minisearch.errors import UserError

    world, searcher, tok, _ = toy_env
    never = ScriptedGenerator(tok, lambda ctx: pytest.fail("nothing may be sampled"))
    with pytest.raises(UserError, match=r"holds 300 tokens .* rollout.max_total_tokens=400: set max_total_tokens"):
        rollout(one_hop(world, 1), never, searcher.search, tok, RolloutConfig(max_total_tokens=400), max_context=300)
    assert rollout(one_hop(world, 1), ScriptedGenerator(tok, oracle(world)), searcher.search, tok,
                   RolloutConfig(max_total_tokens=1024), max_context=1024)[0].end == "answer"
