"""DAPO's update: one batch of kept groups -> advantages, pi_old recomputed, `updates` optimiser steps.

    stats = update(backend, groups, cfg, optimizer)   # groups: dapo.collect's kept groups of Samples

The batch is cut into `updates` mini-batches (one optimiser step each), each mini-batch into
micro-batches of at most `micro_tokens` padded tokens whose gradients are summed, every term
divided by the mini-batch's loss-token count, so memory follows `micro_tokens` and the step is
the one the whole mini-batch at once would take. pi_old and pi_ref are scored without gradients
in those same micro-batches (`no_grad_pass`), so the first mini-batch is exactly on-policy in
any precision; its largest |pi_theta / pi_old - 1| is returned as `ratio_error`. The loss
itself, with its shapes: `dapo_math.py`.
"""

from __future__ import annotations

from minisearch.agent.rollout import render
from minisearch.train.dapo_math import dapo_loss, group_advantages


def valid_members(groups: list, cfg):
    """(N, G) bool: the samples that count in their group (truncated ones do not when masked)."""
    import torch

    return torch.tensor([[not (s.truncated and cfg.truncated == "mask") for s in g] for g in groups])


def update(backend, groups: list, cfg, optimizer) -> dict:
    """Advantages, old log-probs, then `updates` optimiser steps over mini-batches; returns stats.

    Memory is bounded by `micro_tokens`, not by the batch: the old and reference passes run
    micro-batch by micro-batch without gradients, and each mini-batch's gradient is
    accumulated over its micro-batches, every term divided by the mini-batch's token count,
    so the step is the one the whole mini-batch at once would take."""
    import torch

    samples = [s for g in groups for s in g]
    rewards = torch.tensor([[s.reward for s in g] for g in groups])          # (N, G)
    advantages = group_advantages(rewards, valid_members(groups, cfg)).flatten()  # (N * G,)
    rows = [render(s.traj) for s in samples]
    seqs = [ids for ids, _ in rows]
    # the loss mask, shifted like the log-probs (position t scores token t + 1); truncated
    # samples are masked out entirely when the recipe says so
    masks = [torch.tensor(m[1:], dtype=torch.float32) * (0.0 if s.truncated and cfg.truncated == "mask" else 1.0)
             for (_, m), s in zip(rows, samples)]
    scored = [m > 0 for m in masks]
    order = list(range(len(samples)))
    chunks = [order[i::cfg.updates] for i in range(cfg.updates) if order[i::cfg.updates]]
    backend.scoring_mode()  # pi_old, pi_ref and pi_theta in one mode, dropout off: on-policy ratio 1
    old = no_grad_pass(backend, chunks, seqs, scored, cfg.micro_tokens)  # pi_old, recomputed
    ref = None
    if cfg.kl_coef > 0:
        with backend.model.disable_adapter():
            ref = no_grad_pass(backend, chunks, seqs, scored, cfg.micro_tokens)
    stats = {"loss": 0.0, "clip": 0.0, "entropy": 0.0}
    params = [p for p in backend.model.parameters() if p.requires_grad]
    on_policy = None  # the first mini-batch's ratio error: before any step the policy is pi_old
    for chunk in chunks:
        optimizer.zero_grad()
        part = accumulate(backend, chunk, seqs, scored, masks, old, ref, advantages, cfg)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        for key in stats:
            stats[key] += part[key] / len(chunks)
        on_policy = part["ratio_error"] if on_policy is None else on_policy
    backend.sync_lora()  # the sampler draws the next batch from the updated adapter
    return {**stats, "ratio_error": on_policy}


def micro_groups(chunk: list[int], seqs, micro_tokens: int) -> list[list[int]]:
    """The micro-batches of a mini-batch `chunk` (indices into seqs), as `accumulate` runs them."""
    from minisearch.agent.backends.scoring import micro_batches

    return [[chunk[j] for j in micro] for micro in micro_batches([len(seqs[i]) for i in chunk], micro_tokens)]


def no_grad_pass(backend, chunks: list[list[int]], seqs, scored, micro_tokens: int) -> list:
    """Log-probs of every sequence without gradients (pi_old, pi_ref), in the very micro-batches the
    gradient pass will use: in bf16 a sequence padded to another width scores differently (a
    |ratio - 1| of up to ~0.2 on SmolLM2), in the same batch exactly alike, so on-policy stays 1."""
    out: list = [None] * len(seqs)
    for chunk in chunks:
        for idx in micro_groups(chunk, seqs, micro_tokens):
            part = backend.token_logprobs([seqs[i] for i in idx], scored=[scored[i] for i in idx],
                                          micro_tokens=micro_tokens)  # one micro-batch: kept as it is
            for i, lp in zip(idx, part):
                out[i] = lp
    return out


def accumulate(backend, chunk: list[int], seqs, scored, masks, old, ref, advantages, cfg) -> dict:
    """The gradient of one mini-batch (`chunk`, indices into seqs), summed over micro-batches of
    at most `cfg.micro_tokens` padded tokens; returns its loss, clip fraction, entropy and
    `ratio_error`, the largest |pi_theta / pi_old - 1| over its loss tokens."""
    from torch.nn.utils.rnn import pad_sequence

    tokens = sum(float(masks[i].sum()) for i in chunk) or 1.0
    out = {"loss": 0.0, "clip": 0.0, "entropy": 0.0, "ratio_error": 0.0}
    for idx in micro_groups(chunk, seqs, cfg.micro_tokens):
        new, ent = backend.token_logprobs([seqs[i] for i in idx], grad=True, entropy=True,
                                          scored=[scored[i] for i in idx])
        logp = pad_sequence(new, batch_first=True)                          # (b, T)
        old_lp = pad_sequence([old[i] for i in idx], batch_first=True)      # (b, T)
        mask = pad_sequence([masks[i] for i in idx], batch_first=True)      # (b, T)
        ref_lp = pad_sequence([ref[i] for i in idx], batch_first=True) if ref else None
        loss, clip = dapo_loss(logp, old_lp, advantages[idx], mask, cfg.eps_low, cfg.eps_high, ref_lp,
                               cfg.kl_coef, tokens=tokens)
        loss.backward()
        out["loss"] += loss.item()
        out["clip"] += clip.item()
        out["entropy"] += float((pad_sequence(ent, batch_first=True) * mask).sum()) / tokens
        error = ((logp.detach() - old_lp).exp() - 1).abs() * mask
        out["ratio_error"] = max(out["ratio_error"], float(error.max()) if error.numel() else 0.0)
    return out
