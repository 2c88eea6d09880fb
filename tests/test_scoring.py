"""Scoring from hidden states in chunks (`backends/scoring.py`) equals the naive full-logits
log-softmax, on the tiny model and at Qwen2.5's vocabulary of 151,936; DAPO's micro-batched
update has the loss and gradients of the unbatched token-mean; both backends score with the
same code, the gpu one taking its hidden states the way Unsloth's GRPO does."""

from __future__ import annotations

import os
import random

import peft  # noqa: F401  (a required dependency: a broken install fails here)
import pytest
import torch

from minisearch.agent.backends import Backend  # noqa: E402
from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.agent.backends.scoring import Scorer, logprobs, score  # noqa: E402


class Bare(Backend):
    """A transformers model as a backend, for models built in the test (no tokenizer on disk)."""

    def __init__(self, model, pad: int = 0):
        self.model, self.device, self._pad = model, "cpu", pad

    @property
    def pad_id(self) -> int:
        return self._pad


def naive(model, sequences):
    """The reference: the model's (B, T, V) logits, log-softmax over the vocabulary, per sequence."""
    out = []
    for s in sequences:
        ids = torch.tensor([s])
        logits = model(input_ids=ids).logits[0, :-1].float()                 # (T-1, V)
        logp = torch.log_softmax(logits, dim=-1)
        chosen = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        hits = ids[0, 1:] == logits.argmax(-1)
        out.append((chosen, entropy, hits))
    return out


def perturbed(backend):
    """LoRA B starts at zero: move every trainable weight so the adapter counts."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in backend.model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return backend


@pytest.fixture(scope="module")
def tiny(toy_run):
    return perturbed(CpuBackend(toy_run.root / "model", lora_rank=4))


def assert_close_grads(params, expected, tol: float = 1e-4):
    """Each gradient within `tol` of the reference, relative to the reference's norm. Float32 sums
    in another order differ in the last bits: CI measured 1.5e-5 on the embedding matrix, whose
    gradient is a sum over every position; a wrong chunk boundary or a lost row is off by O(1)."""
    for p, g in zip(params, expected):
        err = float((p.grad - g).norm() / g.norm().clamp(min=1e-12))
        assert err < tol, (tuple(p.shape), err)


def sequences(vocab: int, lengths, seed: int = 0):
    rng = random.Random(seed)
    return [[rng.randrange(1, vocab) for _ in range(n)] for n in lengths]


@pytest.mark.parametrize("rows", [1, 7, 1024])
def test_chunked_scores_equal_the_naive_ones_on_the_tiny_model(tiny, rows):
    seqs = sequences(tiny.model.config.vocab_size, [40, 17, 3, 28])
    s = score(tiny, seqs, entropy=True, hits=True, rows=rows)
    for (lp, ent, hit), got_lp, got_ent, got_hit, seq in zip(naive(tiny.model, seqs), s.logprobs, s.entropy,
                                                             s.hits, seqs):
        assert got_lp.shape == (len(seq) - 1,)
        assert torch.allclose(got_lp, lp, atol=1e-5)
        assert torch.allclose(got_ent, ent, atol=1e-4)
        assert torch.equal(got_hit, hit)


def test_only_scored_positions_are_computed_the_rest_read_zero(tiny):
    seqs = sequences(tiny.model.config.vocab_size, [30, 12])
    flags = [[t % 3 == 0 for t in range(len(s) - 1)] for s in seqs]
    s = score(tiny, seqs, scored=flags)
    for (lp, _, _), got, f in zip(naive(tiny.model, seqs), s.logprobs, flags):
        keep = torch.tensor(f)
        assert torch.allclose(got[keep], lp[keep], atol=1e-5)
        assert torch.all(got[~keep] == 0)


def test_micro_batched_no_grad_pass_keeps_order_and_values(tiny):
    seqs = sequences(tiny.model.config.vocab_size, [9, 40, 3, 25, 25, 2])
    whole = score(tiny, seqs).logprobs
    for budget in (1, 50, 10**6):
        part = logprobs(tiny, seqs, micro_tokens=budget).logprobs
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(part, whole))


def test_chunked_gradients_equal_the_naive_ones(tiny):
    seqs = sequences(tiny.model.config.vocab_size, [33, 20])
    params = [p for p in tiny.model.parameters() if p.requires_grad]
    weights = [torch.linspace(-1, 1, len(s) - 1) for s in seqs]
    tiny.model.zero_grad()
    sum((lp * w).sum() for (lp, _, _), w in zip(naive(tiny.model, seqs), weights)).backward()
    expected = [p.grad.clone() for p in params]
    tiny.model.zero_grad()
    s = score(tiny, seqs, grad=True, rows=5)
    sum((lp * w).sum() for lp, w in zip(s.logprobs, weights)).backward()
    assert_close_grads(params, expected)
    tiny.model.zero_grad()


def test_at_qwen_vocabulary_size_chunked_equals_naive():
    """A random Qwen2 with Qwen2.5's 151,936-word vocabulary (small hidden size), bf16-free."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=151_936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config).eval()
    backend = Bare(model, pad=151_643)
    seqs = sequences(config.vocab_size, [70, 41, 5], seed=1)
    with torch.no_grad():
        s = score(backend, seqs, entropy=True, hits=True, rows=32)
        reference = naive(model, seqs)
    for (lp, ent, hit), got_lp, got_ent, got_hit in zip(reference, s.logprobs, s.entropy, s.hits):
        assert torch.allclose(got_lp, lp, atol=1e-5)
        assert torch.allclose(got_ent, ent, atol=1e-4)
        assert torch.equal(got_hit, hit)


@pytest.mark.parametrize("micro_tokens", [1, 60, 10**6])
def test_dapo_micro_batched_update_has_the_unbatched_loss_and_gradients(tiny, micro_tokens):
    """`accumulate` sums micro-batch terms each divided by the mini-batch's loss-mask count:
    the same loss and gradients as one dapo_loss over the whole padded mini-batch."""
    from torch.nn.utils.rnn import pad_sequence

    from minisearch.train.dapo import DapoConfig
    from minisearch.train.dapo_math import dapo_loss
    from minisearch.train.dapo_update import accumulate

    seqs = sequences(tiny.model.config.vocab_size, [30, 12, 45, 22, 8], seed=3)
    gen = torch.Generator().manual_seed(1)
    masks = [(torch.rand(len(s) - 1, generator=gen) > 0.4).float() for s in seqs]
    scored = [m > 0 for m in masks]
    advantages = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.3])
    with torch.no_grad():  # an "old" policy a little off the current one, so ratios are not 1
        old = [lp + 0.1 * torch.randn(lp.shape, generator=gen) * m
               for lp, m in zip(score(tiny, seqs, scored=scored).logprobs, masks)]
    params = [p for p in tiny.model.parameters() if p.requires_grad]
    chunk = [0, 1, 2, 3, 4]

    tiny.model.zero_grad()
    new = [lp for lp, _, _ in naive(tiny.model, seqs)]
    loss, _ = dapo_loss(pad_sequence(new, batch_first=True), pad_sequence(old, batch_first=True), advantages,
                        pad_sequence(masks, batch_first=True), 0.2, 0.28)
    loss.backward()
    expected = [p.grad.clone() for p in params]

    tiny.model.zero_grad()
    cfg = DapoConfig("tasks", "index", "model", "out", micro_tokens=micro_tokens)
    out = accumulate(tiny, chunk, seqs, scored, masks, old, None, advantages, cfg)
    assert out["loss"] == pytest.approx(loss.item(), rel=1e-5, abs=1e-7)
    assert_close_grads(params, expected)
    tiny.model.zero_grad()


def test_both_backends_score_with_the_same_code():
    from minisearch.agent.backends.gpu import GpuBackend  # imports without unsloth: it is loaded in __init__

    for name in ("token_logprobs", "output_layer", "micro_tokens"):
        assert getattr(GpuBackend, name) is getattr(Scorer, name) is getattr(CpuBackend, name)


class UnslothLike(torch.nn.Module):
    """Stands in for Unsloth's patched forward (which needs CUDA): with UNSLOTH_RETURN_HIDDEN_STATES=1
    it returns the final hidden states in `.logits`, as unsloth/models/llama.py does."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def get_base_model(self):
        return self.lm

    def forward(self, input_ids, attention_mask, use_cache):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if os.environ.get("UNSLOTH_RETURN_HIDDEN_STATES") == "1":
            body = getattr(self.lm, self.lm.base_model_prefix)
            h = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache).last_hidden_state
            return CausalLMOutputWithPast(logits=h)
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


def test_the_gpu_backend_takes_hidden_states_through_unsloths_switch(tiny):
    from minisearch.agent.backends.gpu import HIDDEN, GpuBackend

    gpu = object.__new__(GpuBackend)
    gpu.model, gpu.tokenizer, gpu.device, gpu.bare = UnslothLike(tiny._causal_lm()), tiny.tokenizer, "cpu", False
    seqs = sequences(tiny.model.config.vocab_size, [20, 9])
    assert HIDDEN not in os.environ
    got = gpu.token_logprobs(seqs)
    assert HIDDEN not in os.environ  # set for the forward only
    for (lp, _, _), g in zip(naive(tiny.model, seqs), got):
        assert torch.allclose(g, lp, atol=1e-5)
    gpu.model = tiny._causal_lm()  # a forward that ignores the switch: an error, never logits read as states
    with pytest.raises(RuntimeError, match="hidden size"):
        gpu.token_logprobs(seqs)
