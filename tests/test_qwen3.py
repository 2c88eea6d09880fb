"""Qwen3's tokenizer and chat template through the protocol: thinking mode, `<think>` as special tokens.

The prompt is rendered in thinking mode (the template's default, set explicitly), so it ends
at `<|im_start|>assistant\\n` and the agent's own `<think>` is Qwen3's thinking; no empty
`<think></think>` is injected. `<think>`/`</think>` are one special token each and survive
every decode the loop makes, so a trajectory re-tokenised from its record is the same ids.
"""

from __future__ import annotations

import pytest
import transformers  # noqa: F401  (a required dependency: a broken install fails here)
from helpers import results_shown  # noqa: E402

from minisearch.agent.protocol import parse_turn  # noqa: E402
from minisearch.agent.rollout import (  # noqa: E402
    RolloutConfig,
    ScriptedGenerator,
    from_record,
    prompt_ids,
    render,
    rollout,
    to_record,
)

THINK, END_THINK = 151667, 151668


@pytest.fixture(scope="module")
def qwen3(qwen3_tokenizer):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen3_tokenizer)


def test_the_rebuilt_tokenizer_is_qwen3s(qwen3):
    assert len(qwen3) == 151669 and qwen3.convert_tokens_to_ids(["<think>", "</think>"]) == [THINK, END_THINK]
    assert qwen3.convert_tokens_to_ids("<|im_start|>") == 151644
    assert qwen3("Hello world")["input_ids"] == [9707, 1879]  # Qwen's BPE ranks, as published


def test_the_prompt_is_in_thinking_mode(qwen3):
    ids, text = prompt_ids(qwen3, {"id": "q", "question": "Who founded Vethmora Holdings?"}, 4)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    tail = ids[len(ids) - 1 - ids[::-1].index(151644):]  # from the last <|im_start|>
    assert qwen3.decode(tail) == "<|im_start|>assistant\n"  # no empty think block: the model thinks in its own
    assert "Who founded Vethmora Holdings?" in text


def test_a_thinking_turn_parses(qwen3):
    text = "<think>\nThe company's page will name its founder.\n</think>\n\n<search>Vethmora Holdings founder</search>"
    ids = qwen3(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == THINK and END_THINK in ids
    decoded = qwen3.decode(ids, skip_special_tokens=False)
    assert decoded == text
    turn = parse_turn(decoded)
    assert turn.kind == "search" and turn.query == "Vethmora Holdings founder"
    assert turn.thought == "The company's page will name its founder."


def test_a_rollout_in_qwen3_tokens_renders_again_from_its_record(qwen3, toy_env):
    world, searcher = toy_env.world, toy_env.searcher
    task = next(t for t in world.qa["train"] if t["metadata"]["type"] == "one-hop")
    name = task["question"]  # the question as asked finds a one-hop page in the toy index

    def script(context: str) -> str:
        if not results_shown(context):
            return f"<think>\nI should look it up.\n</think>\n\n<search>{name}</search>"
        return f"<think>\nThe page says it.\n</think>\n\n<answer>{task['golden_answers'][0]}</answer>"

    traj = rollout([task], ScriptedGenerator(qwen3, script), searcher.search, qwen3,
                   RolloutConfig(max_new_tokens=64, max_total_tokens=4096))[0]
    assert traj.end == "answer" and traj.searches == 1
    ids, mask = render(traj)
    written = [i for seg in traj.segments if seg.who == "model" for i in seg.token_ids]
    assert written.count(THINK) == 2 and written.count(END_THINK) == 2
    assert sum(m for i, m in zip(ids, mask) if i == THINK) == 2  # the model's thinking is trained on
    again, again_mask = render(from_record(qwen3, to_record(traj, task, 4, "scripted")))
    assert (again, again_mask) == (ids, mask)
