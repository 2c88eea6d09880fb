"""Scoring token sequences without ever holding (batch x length x vocabulary) logits.

Every place that scores a sequence (DAPO's old, reference and new log-probs, SFT's loss and
token accuracy, perplexity masking) calls `score`, on both backends:

    h     = body(ids)                       (B, T, H)  the model without its output layer
    h_n   = h at the scored positions        (N, H)     N = positions that are scored
    for each chunk of `rows` positions:      (rows, V)  logits in float32, then dropped
        lp_n  = z_n[y_n] - logsumexp(z_n)               the chosen token's log-prob
        ent_n = logsumexp(z_n) - sum_v softmax(z_n)_v z_nv   (no gradient)
        hit_n = z_n[y_n] == max_v z_nv                  (no gradient; token accuracy)

With gradients each chunk is checkpointed: its logits are recomputed in backward, so the
gradient path also holds one chunk at a time. Peak memory is the micro-batch's activations
plus one chunk's float32 temporaries (~rows x V x 20 bytes, 2.9 GiB at V = 151,936:
bench/memory.py), whatever the batch and its length. `micro_batches` cuts work under a token
budget; `logprobs` runs a whole list of sequences through it under `inference_mode` (old and
reference passes).

The chunk checkpoint is `torch.utils.checkpoint.checkpoint(..., use_reentrant=True)`, looked
up when called, and that is a choice. Importing Unsloth replaces that function process-wide
(unsloth_zoo's `unsloth_checkpoint`, which forces `use_reentrant=True` whatever the caller
asks and runs `UnslothCheckpointFunction`, a reentrant checkpoint that offloads its first
argument to the CPU when that is a large tensor; ours is the output layer, a function, so
nothing is offloaded). Asking for the reentrant form on every backend makes the gpu and cpu
paths the same algorithm, so a test on the CPU covers what runs under Unsloth. What that
form implies, here and under Unsloth: gradients come through `loss.backward()` only (it
breaks with `torch.autograd.grad` or `backward(inputs=...)`; minisearch uses neither), and
an input must require grad, so a chunk whose hidden states do not (a frozen body) is scored
without a checkpoint, its output-layer gradient intact. Non-reentrant checkpointing cannot
be had under Unsloth through the public function, and its private pieces change between
torch releases, so minisearch does not reach for them.

A backend may score in a lower precision (`Scorer.autocast_dtype`: the cpu backend's
`train_dtype`, bfloat16 for a pretrained model on a CPU with native bf16): the body then runs
under `torch.autocast` (matmuls in bf16, norms and softmax in float32, the weights and their
gradients in float32), and the output layer always in float32, since a bf16 logit of 20 is off
by ~0.08 and every log-prob, ratio and loss reads the logits. Both checkpoints (the chunk's and
the body's) recompute under the autocast state of their forward.

Every score inside one training step is taken in one mode (`Scorer.scoring_mode`): train
mode with every dropout off. Unsloth's forward builds another attention path in eval mode
(a 4-D SDPA mask instead of plain causal attention), and dropout makes two passes over one
sequence disagree; either would make DAPO's ratio pi / pi_old differ from 1 on-policy.

A backend supplies `hidden_states(ids, mask) -> (B, T, H)` and `output_layer(h) -> logits`.
"""

from __future__ import annotations

from dataclasses import dataclass

ROWS = 1024  # output-layer rows per chunk: ~0.6 GB of float32 logits at V = 151,936, ~2.9 GiB peak


@dataclass
class Scores:
    """Per sequence, one value per position t >= 1 (len(seq) - 1); 0 where not scored."""

    logprobs: list      # tensors; with grad they carry gradients
    entropy: list | None = None
    hits: list | None = None


def micro_batches(lengths: list[int], micro_tokens: int) -> list[list[int]]:
    """Indices grouped so that each group's padded size (count x longest) stays within
    `micro_tokens`; a sequence longer than the budget goes alone. Longest first, so the
    first group shows the peak at once.

    >>> micro_batches([5, 3, 8, 2], 10)
    [[2], [0, 1], [3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[groups[-1][0]] * (len(groups[-1]) + 1) <= micro_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _chunk_scores(output_layer, h, y, want_entropy: bool, want_hits: bool):
    """(rows, H), (rows,) -> log-probs (rows,), entropy (rows,) or None, hits (rows,) or None."""
    import torch

    z = output_layer(h).float()                                  # (rows, V)
    lse = torch.logsumexp(z, dim=-1)                             # (rows,)
    chosen = z.gather(-1, y.unsqueeze(-1)).squeeze(-1)           # (rows,)
    ent = hit = None
    with torch.no_grad():
        if want_entropy:
            p = torch.softmax(z.detach(), dim=-1)
            ent = lse.detach() - torch.linalg.vecdot(p, z.detach())
            del p
        if want_hits:
            hit = chosen.detach() >= z.detach().max(dim=-1).values
    return chosen - lse, ent, hit


def score_hidden(output_layer, hidden, targets, grad: bool, entropy: bool = False, hits: bool = False,
                 rows: int = ROWS):
    """hidden (N, H), targets (N,) -> (log-probs (N,), entropy (N,) | None, hits (N,) | None)."""
    import torch
    import torch.utils.checkpoint

    lps, ents, hts = [], [], []
    for start in range(0, hidden.shape[0], rows):
        h, y = hidden[start:start + rows], targets[start:start + rows]
        if grad and torch.is_grad_enabled() and h.requires_grad:  # reentrant: see the module's docstring
            lp, ent, hit = torch.utils.checkpoint.checkpoint(_chunk_scores, output_layer, h, y, entropy, hits,
                                                             use_reentrant=True, preserve_rng_state=False)
            # a reentrant checkpoint marks every output as differentiable; these two never are
            ent, hit = (t.detach() if t is not None else None for t in (ent, hit))
        else:
            lp, ent, hit = _chunk_scores(output_layer, h, y, entropy, hits)
        lps.append(lp)
        ents.append(ent)
        hts.append(hit)
    empty = hidden.new_zeros(0, dtype=torch.float32)
    lp = torch.cat(lps) if lps else empty
    ent = torch.cat(ents) if entropy and ents else (empty if entropy else None)
    hit = torch.cat(hts) if hits and hts else (empty.bool() if hits else None)
    return lp, ent, hit


def score(backend, sequences: list[list[int]], scored: list | None = None, grad: bool = False,
          entropy: bool = False, hits: bool = False, rows: int = ROWS) -> Scores:
    """log p(token_t | tokens_<t) for t >= 1 of each sequence, in one forward of the body.

    `scored`: per sequence, len(seq) - 1 truthy/falsy flags (position t scores token t + 1);
    the output layer runs only there, and the rest read 0. None scores every position.
    """
    import torch

    device = backend.device
    width = max(len(s) for s in sequences)
    pad = backend.pad_id
    ids = torch.tensor([list(s) + [pad] * (width - len(s)) for s in sequences], device=device)       # (B, T)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)   # (B, T)
    if scored is None:
        keep = mask[:, 1:].bool()                                                                    # (B, T-1)
    else:
        keep = torch.zeros(len(sequences), width - 1, dtype=torch.bool, device=device)
        for i, flags in enumerate(scored):
            keep[i, :len(flags)] = torch.as_tensor(list(flags), dtype=torch.bool, device=device)
        keep &= mask[:, 1:].bool()
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        with backend.autocast():
            hidden = backend.hidden_states(ids, mask)[:, :-1]                                        # (B, T-1, H)
        if backend.autocast_dtype is not None:
            hidden = hidden.float()  # the output layer in float32 (the module's docstring)
        lp, ent, hit = score_hidden(backend.output_layer, hidden[keep], ids[:, 1:][keep], grad, entropy, hits, rows)

    def spread(values, dtype):
        full = torch.zeros(keep.shape, dtype=dtype, device=device).masked_scatter(keep, values)
        return [full[i, :len(s) - 1] for i, s in enumerate(sequences)]
    return Scores(spread(lp, torch.float32), spread(ent, torch.float32) if entropy else None,
                  spread(hit, torch.bool) if hits else None)


def logprobs(backend, sequences: list[list[int]], scored: list | None = None, micro_tokens: int = 8192,
             entropy: bool = False) -> Scores:
    """`score` over any number of sequences, micro-batch by micro-batch, without gradients
    (DAPO's old and reference passes, perplexity masking). Results in the input's order."""
    import torch

    out_lp: list = [None] * len(sequences)
    out_ent: list = [None] * len(sequences)
    with torch.inference_mode():
        for group in micro_batches([len(s) for s in sequences], micro_tokens):
            part = score(backend, [sequences[i] for i in group], [scored[i] for i in group] if scored else None,
                         entropy=entropy)
            for j, i in enumerate(group):
                out_lp[i] = part.logprobs[j]
                out_ent[i] = part.entropy[j] if entropy else None
    # clones made outside inference mode are ordinary tensors, usable beside a graph later
    return Scores([t.clone() for t in out_lp], [t.clone() for t in out_ent] if entropy else None)


def body_states(lm, ids, mask=None):
    """A transformers causal LM's final hidden states (B, T, H), without its output layer."""
    body = getattr(lm, lm.base_model_prefix)
    return body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state


def output_logits(lm, h):
    """(N, H) -> (N, V) logits of a transformers causal LM, with its final soft-cap if it has one."""
    import torch

    z = lm.get_output_embeddings()(h)
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return cap * torch.tanh(z / cap) if cap else z


class Scorer:
    """What a backend needs to score sequences: `self.model` (transformers or peft, Unsloth
    included), `self.tokenizer`, `self.device`. `hidden_states` may be overridden (Unsloth)."""

    micro_tokens = 8192  # the default token budget of one micro-batch in `logprobs`
    autocast_dtype = None  # a lower precision the body scores in (torch.autocast); None: the weights' own

    def autocast(self):
        """The context the body is scored in: `torch.autocast` to `autocast_dtype`, or nothing."""
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def _causal_lm(self):
        """The transformers model under any peft wrapper (its LoRA layers stay injected)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def hidden_states(self, ids, mask):
        """(B, T) ids and mask -> (B, T, H) final hidden states, the output layer not applied."""
        return body_states(self._causal_lm(), ids, mask)

    def output_layer(self, h):
        """(N, H) -> (N, V) logits, with the model's own final soft-cap if it has one."""
        return output_logits(self._causal_lm(), h)

    def token_logprobs(self, sequences: list[list[int]], grad: bool = False, entropy: bool = False,
                       scored: list | None = None, micro_tokens: int | None = None):
        """log p(token_t | tokens_<t) for t >= 1 of each sequence (length len(seq) - 1), in one
        forward; with `entropy`, (log-probs, entropies). Without `grad`, in micro-batches of
        `micro_tokens` padded tokens (default `self.micro_tokens`)."""
        if not grad:
            s = logprobs(self, sequences, scored, micro_tokens or self.micro_tokens, entropy)
        else:
            s = score(self, sequences, scored, grad=True, entropy=entropy)
        return (s.logprobs, s.entropy) if entropy else s.logprobs

    def scoring_mode(self) -> None:
        """Put the model in the one mode all scores of a training step are taken in: train mode
        (the attention path and gradient checkpointing of the backward pass; under no_grad a
        transformers layer skips its checkpoint), with every dropout probability set to 0 (LoRA
        dropout of a loaded adapter, attention dropout of the base), so one sequence scored
        twice by the same weights gets the same log-probs. Setting p to 0 outlives later
        `train()` calls, which would switch dropout modules put in eval mode back on."""
        import torch

        dropouts = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
                    torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, dropouts):
                module.p = 0.0
            if isinstance(getattr(module, "attention_dropout", None), float):  # read by the attention call
                module.attention_dropout = 0.0

    def set_grad_checkpoint(self, on: bool) -> None:
        """Recompute the body's activations in backward (non-reentrant, so frozen embeddings
        need no input-grad hook); a model that does not support it trains as it is."""
        lm = self._causal_lm()
        if not getattr(lm, "supports_gradient_checkpointing", False):
            return
        kwargs = {"use_reentrant": False}
        if hasattr(lm, "activation_checkpointing_enable"):  # its name since transformers 5.2x
            if on:
                lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                lm.activation_checkpointing_disable()
        elif on:                                             # transformers 5.17, the gpu pin
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        else:
            lm.gradient_checkpointing_disable()
