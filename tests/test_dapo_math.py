"""DAPO's advantages, dynamic sampling and clipped token-level loss against a plain-Python version."""

from __future__ import annotations

import math
import random

import pytest
import torch

from minisearch.train.dapo_math import dapo_loss, group_advantages, informative  # noqa: E402


def reference_loss(rewards, logp, old, mask, eps_low, eps_high):
    """Straight from the DAPO paper, with loops: drop flat groups, normalise per group, sum the
    clipped surrogate over every kept model token, divide by their count."""
    total, tokens, clipped = 0.0, 0, 0
    for g, group in enumerate(rewards):
        if max(group) - min(group) <= 1e-9:
            continue
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))
        for i, r in enumerate(group):
            adv = (r - mean) / (std + 1e-6)
            for t in range(len(logp[g][i])):
                if not mask[g][i][t]:
                    continue
                ratio = math.exp(logp[g][i][t] - old[g][i][t])
                plain, cut = ratio * adv, min(max(ratio, 1 - eps_low), 1 + eps_high) * adv
                total -= min(plain, cut)
                tokens += 1
                clipped += cut < plain
    return total / tokens, clipped / tokens


def random_batch(seed, groups=6, size=4, length=9):
    rng = random.Random(seed)
    rewards = [[rng.choice([0.0, 0.5, 1.0]) for _ in range(size)] for _ in range(groups)]
    rewards[0] = [1.0] * size  # a flat group: dynamic sampling drops it
    rewards[1] = [0.0] * size
    logp = [[[-rng.uniform(0.1, 3) for _ in range(length)] for _ in range(size)] for _ in range(groups)]
    # old log-probs far enough off that both clip bounds are hit
    old = [[[lp + rng.uniform(-0.6, 0.6) for lp in row] for row in g] for g in logp]
    mask = [[[rng.random() < 0.7 for _ in range(length)] for _ in range(size)] for _ in range(groups)]
    return rewards, logp, old, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [(0.2, 0.28), (0.1, 0.1)])
def test_loss_matches_reference(seed, eps):
    rewards, logp, old, mask = random_batch(seed)
    want, want_clip = reference_loss(rewards, logp, old, mask, *eps)
    r = torch.tensor(rewards)                                   # (N, G)
    keep = informative(r)
    assert keep.tolist()[:2] == [False, False]
    adv = group_advantages(r[keep]).flatten()                  # (N' * G,)
    pick = [(g, i) for g, k in enumerate(keep.tolist()) if k for i in range(len(rewards[g]))]
    lp = torch.tensor([logp[g][i] for g, i in pick], requires_grad=True)
    got, clip = dapo_loss(lp, torch.tensor([old[g][i] for g, i in pick]), adv,
                          torch.tensor([mask[g][i] for g, i in pick]), *eps)
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert clip.item() == pytest.approx(want_clip, abs=1e-6)
    assert 0 < want_clip < 1  # the case really exercises clipping
    got.backward()
    masked_out = ~torch.tensor([mask[g][i] for g, i in pick])
    assert torch.all(lp.grad[masked_out] == 0)  # observation tokens never get a gradient


def test_clip_is_asymmetric():
    logp = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5 against old = 0
    old = torch.zeros(1, 2)
    up, _ = dapo_loss(logp, old, torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]))
    assert up.item() == pytest.approx(-1.28)  # positive advantage: capped at 1 + eps_high
    down, _ = dapo_loss(logp, old, torch.tensor([-1.0]), torch.tensor([[0.0, 1.0]]))
    assert down.item() == pytest.approx(0.8)  # negative advantage: floored at 1 - eps_low


def test_group_advantages_are_normalised():
    adv = group_advantages(torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.2, 0.2, 0.2, 1.0]]))
    assert torch.allclose(adv.mean(dim=1), torch.zeros(2), atol=1e-6)
    assert torch.allclose(adv.std(dim=1, unbiased=False), torch.ones(2), atol=1e-4)


def test_kl_term_is_zero_on_the_reference():
    lp = torch.randn(2, 5)
    base, _ = dapo_loss(lp, lp, torch.tensor([1.0, -1.0]), torch.ones(2, 5))
    same, _ = dapo_loss(lp, lp, torch.tensor([1.0, -1.0]), torch.ones(2, 5), ref_logp=lp, kl_coef=0.5)
    more, _ = dapo_loss(lp, lp, torch.tensor([1.0, -1.0]), torch.ones(2, 5), ref_logp=lp + 0.3, kl_coef=0.5)
    assert same.item() == pytest.approx(base.item()) and more.item() > base.item()


def test_truncated_members_leave_the_group_statistics():
    rewards = torch.tensor([[1.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, -1.0]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, False]])
    adv = group_advantages(rewards, valid)
    assert adv[0, 3] == 0 and torch.allclose(adv[0, :3], group_advantages(rewards[:1, :3])[0])
    assert informative(rewards, valid).tolist() == [True, False]  # [0, 0, 0, truncated] teaches nothing
    assert informative(rewards).tolist() == [True, True]


def test_masked_positions_cannot_overflow():
    logp = torch.tensor([[-1.0, 0.0]])
    old = torch.tensor([[-1.0, -1000.0]])  # a huge ratio where the mask is 0
    loss, _ = dapo_loss(logp, old, torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(loss)
