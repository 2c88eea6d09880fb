"""The mask-count curriculum: stages, promotion by steps or reward, mixed and QA settings."""

from __future__ import annotations

import random

import pytest

from minisearch.train.curriculum import Curriculum


def tasks(*ks):
    return [{"id": f"t{i}", "metadata": {"mask_num": k}} for i, k in enumerate(ks)]


def test_stages_follow_mask_counts_and_sampling_stays_in_stage():
    cur = Curriculum.from_tasks(tasks(3, 1, 2, 1, 4, 2), promote_steps=2)
    assert [k for k, _ in cur.stages] == [1, 2, 3, 4]
    rng = random.Random(0)
    assert {t["metadata"]["mask_num"] for t in cur.sample(rng, 5)} == {1}


@pytest.mark.parametrize("rule, rewards, want_ks", [
    ({"promote_steps": 2}, [0, 0, 0, 0, 0, 0, 0], [1, 1, 2, 2, 3, 3, 3]),
    ({"promote_reward": 0.5, "window": 2}, [0.4, 0.7, 0.2, 0.3, 0.9, 0.1, 1.0], [1, 1, 2, 2, 2, 3, 3]),
    ({"promote_steps": 3, "promote_reward": 0.5, "window": 1}, [0.9, 0, 0, 0, 0, 0], [1, 2, 2, 2, 3, 3]),
    ({}, [1, 1, 1], [1, 1, 1]),  # no rule: stays
])
def test_promotion_rules(rule, rewards, want_ks):
    cur = Curriculum.from_tasks(tasks(1, 2, 3), **rule)
    seen = []
    for r in rewards:
        seen.append(cur.k)
        cur.update(r)
    assert seen == want_ks


def test_mixed_and_qa_are_one_stage():
    assert [k for k, _ in Curriculum.from_tasks(tasks(1, 2, 3), "mixed").stages] == [0]
    qa = [{"id": "q", "question": "?", "golden_answers": ["x"]}]
    cur = Curriculum.from_tasks(qa, promote_steps=1)
    assert cur.k == 0 and cur.update(1.0) is False
    with pytest.raises(ValueError, match="mode"):
        Curriculum.from_tasks(qa, "random")


def test_state_round_trips():
    cur = Curriculum.from_tasks(tasks(1, 2), promote_steps=3)
    cur.update(0.1)
    other = Curriculum.from_tasks(tasks(1, 2), promote_steps=3)
    other.load_state(cur.state())
    cur.update(0.2), other.update(0.2)
    assert cur.update(0.3) and other.update(0.3)
