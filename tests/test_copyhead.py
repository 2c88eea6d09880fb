"""The planted induction circuit copies by content at init, and training leaves it in place."""

from __future__ import annotations

import pytest
import torch
import transformers

from minisearch.errors import UserError  # noqa: E402
from minisearch.tiny.copyhead import LAYERS, freeze, heads_per_kv, plant, planted  # noqa: E402


def tiny(width=128, heads=4, layers=4, vocab=512, theta=1e10):
    """A bare random Qwen2 of the tiny model's shape, not the shared `tiny_model` (conftest):
    these tests plant the circuit themselves (that one is built planted), need no tokenizer,
    and vary the shape to reach plant's errors."""
    config = transformers.Qwen2Config(
        vocab_size=vocab, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=2, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": theta})
    torch.manual_seed(0)
    return transformers.Qwen2ForCausalLM(config).eval()


def repeat_accuracy(model, vocab=512, length=60, rows=8, distinct=None):
    """Next-token accuracy on the second reading of a random token sequence, and on the first;
    with `distinct`, the tokens come from that many (so they repeat within the sequence)."""
    g = torch.Generator().manual_seed(1)
    pool = torch.randperm(vocab, generator=g)[:distinct or vocab]
    seq = pool[torch.randint(0, len(pool), (rows, length), generator=g)]
    ids = torch.cat([seq, seq], dim=1)                               # (rows, 2 * length)
    with torch.no_grad():
        guess = model(input_ids=ids).logits.argmax(-1)[:, :-1]       # (rows, 2 * length - 1)
    right = guess == ids[:, 1:]
    return right[:, length:].float().mean().item(), right[:, :length - 1].float().mean().item()


def test_a_planted_random_model_repeats_random_tokens():
    model = tiny()
    assert repeat_accuracy(model)[0] < 0.05  # a random model cannot copy
    plant(model, seed=0)
    repeat, first = repeat_accuracy(model)
    assert repeat > 0.5 and first < 0.05, (repeat, first)


def test_matching_two_tokens_copies_through_repeated_tokens():
    """40 distinct tokens in 60: after a repeated token a one-token match guesses which
    occurrence to follow (0.41 measured); the previous token settles it (0.85)."""
    model = tiny()
    plant(model, seed=0)
    repeat, _ = repeat_accuracy(model, distinct=40, rows=16)
    assert repeat > 0.7, repeat


def test_the_pointer_head_copies_wherever_its_query_points():
    """Layer 1 head 1 shares head 0's keys, values and copy; only its query is its own. Given
    head 0's query and head 0 silenced, it alone copies as the induction head did."""
    model = tiny()
    plant(model, seed=0)
    attn, d = model.model.layers[1].self_attn, model.model.layers[1].self_attn.head_dim
    with torch.no_grad():
        attn.o_proj.weight[:, :d] = 0                                    # head 0 silent
    assert repeat_accuracy(model)[0] < 0.05                              # head 1's random query copies nothing
    with torch.no_grad():
        attn.q_proj.weight[d:2 * d] = attn.q_proj.weight[:d]             # head 1 asks what head 0 asked
    repeat, first = repeat_accuracy(model)
    assert repeat > 0.5 and first < 0.05, (repeat, first)


def test_freeze_keeps_the_planted_slices_and_trains_the_rest():
    model = tiny()
    plant(model)
    freeze(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.randint(0, 512, (4, 32))
    model.train()
    for _ in range(2):  # layer 0's free heads start silent (o = 0): their queries move from the second step
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    for i in LAYERS:
        attn, prefix = model.model.layers[i].self_attn, f"model.layers.{i}.self_attn."
        owned = planted(i, attn.head_dim, heads_per_kv(model.config))
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            now, was = getattr(attn, name).weight, before[prefix + name + ".weight"]
            if name == "o_proj":
                now, was = now.T, was.T
            kept = torch.zeros(len(now), dtype=torch.bool)
            for rows in owned[name]:
                kept[rows] = True
            assert torch.equal(now[kept], was[kept]), (i, name)
            if not kept.all():  # layer 0's keys and values are wholly the circuit's
                assert not torch.equal(now[~kept], was[~kept]), (i, name)
    name = "model.layers.2.self_attn.q_proj.weight"
    assert not torch.equal(model.get_parameter(name), before[name])


def test_a_model_too_narrow_for_the_circuit_is_refused():
    with pytest.raises(UserError, match="hidden_size >= 3 \\* head_dim"):
        plant(tiny(width=64, heads=2))
