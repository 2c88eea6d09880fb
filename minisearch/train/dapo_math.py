"""DAPO's math as pure tensor functions (the dapo stage's loop is in `dapo.py`).

    advantage   A_i = (R_i - mean_j R_j) / (std_j R_j + 1e-6)         (one value per trajectory)
    ratio       r_it = exp(log pi(o_it | .) - log pi_old(o_it | .))     (token t of trajectory i)
    objective   J = sum_i sum_t m_it * min(r_it A_i, clip(r_it, 1 - eps_low, 1 + eps_high) A_i)
                    / sum_i sum_t m_it
    loss        -J  (+ kl_coef * KL(pi || pi_ref) per token, k3 estimator, off by default)

m_it is 1 on model-written tokens only. A group whose rewards are all equal carries no
signal (`informative` is False) and is dropped by dynamic sampling. A test checks these
against a loop-by-loop implementation.
"""

from __future__ import annotations


def group_advantages(rewards, valid=None):
    """rewards (N, G) -> advantages (N, G), normalised within each group.

    valid (N, G) bool, optional: only these members count in a group's mean and std (the
    others, truncated samples masked out of the loss, get advantage 0)."""
    import torch

    valid = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid
    w = valid.to(rewards.dtype)
    n = w.sum(dim=1, keepdim=True).clamp(min=1)                            # (N, 1)
    mean = (rewards * w).sum(dim=1, keepdim=True) / n                     # (N, 1)
    std = (((rewards - mean) ** 2 * w).sum(dim=1, keepdim=True) / n).sqrt()  # (N, 1), population std
    return (rewards - mean) / (std + 1e-6) * w


def informative(rewards, valid=None):
    """rewards (N, G) -> (N,) bool: groups whose (valid) rewards are not all equal (dynamic sampling)."""
    import torch

    valid = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid
    high = torch.where(valid, rewards, torch.full_like(rewards, -float("inf"))).max(dim=1).values
    low = torch.where(valid, rewards, torch.full_like(rewards, float("inf"))).min(dim=1).values
    return (valid.sum(dim=1) >= 2) & ((high - low) > 1e-9)


def dapo_loss(logp, old_logp, advantages, mask, eps_low: float = 0.2, eps_high: float = 0.28,
              ref_logp=None, kl_coef: float = 0.0, tokens=None):
    """The clipped token-level policy loss and its clip fraction.

    logp, old_logp, mask, ref_logp: (B, T); advantages: (B,). Returns (loss, clip_fraction).
    `tokens`: the denominator, sum m_it over the whole mini-batch when these B rows are one
    micro-batch of it (the terms of its micro-batches then add up to the mini-batch's loss);
    default this batch's own count.
    """
    import torch

    keep = mask.bool()
    mask = mask.to(logp.dtype)
    ratio = torch.exp(torch.where(keep, logp - old_logp, torch.zeros_like(logp)))  # (B, T); 1 off the mask
    adv = advantages.unsqueeze(1)                                         # (B, 1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped)                        # (B, T)
    if ref_logp is not None and kl_coef > 0:
        delta = torch.where(keep, ref_logp - logp, torch.zeros_like(logp))
        per_token = per_token + kl_coef * (torch.exp(delta) - delta - 1)  # k3 estimate of KL(pi || ref)
    tokens = mask.sum().clamp(min=1) if tokens is None else tokens
    loss = (per_token * mask).sum() / tokens
    clip_fraction = ((clipped < unclipped).to(logp.dtype) * mask).sum() / tokens
    return loss, clip_fraction.detach()


def overlong_shaping(length: int, budget: int, buffer: int, penalty: float) -> float:
    """The soft length penalty (<= 0) of a completion of `length` tokens with `budget` allowed.

    >>> overlong_shaping(100, 512, 128, 1.0), overlong_shaping(448, 512, 128, 1.0)
    (0.0, -0.5)
    """
    start = budget - buffer
    if buffer <= 0 or length <= start:
        return 0.0
    return -penalty * min(1.0, (length - start) / buffer)
