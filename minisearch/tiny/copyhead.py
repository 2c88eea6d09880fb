"""A planted induction circuit: the tiny CPU model copies by content from its first step.

A search agent copies: the title from its prompt into a query, a name from the search results
into its answer. A pretrained LLM does it with induction heads (find where the current token
stood before, predict what followed it), a circuit that forms late in pretraining, after far
more tokens than a CPU warm-up reads (a warm-up from random weights learns none, and a planted
circuit left trainable is overwritten: docs/tiny-model.md). So `minisearch init` builds
the circuit into heads of layers 0 and 1 and the warm-up keeps those weights fixed; everything
else learns.

With d = head_dim, e_t the token embedding, u = RMSNorm(residual), h2 the query heads per
key/value head (GQA), and three orthonormal d-dimensional subspaces of the residual, U (where
the previous token is written), U2 (where the token before it is written) and R (the token
code that is matched and copied):

    layer 0, heads 0 and h2 (previous token, and the one before), on key/value heads 0 and 1:
        q = b_q, k = b_k (no weights, only biases), v = R^T u; through RoPE the score is
        sum_j |b_j|^2 cos((t - n - s) theta_j), highest s = 1 (head 0) or s = 2 (head h2)
        positions back (`PEAK` is its height in logits). They write ALPHA * U R^T u_{t-1}
        and ALPHA * U2 R^T u_{t-2}. The other query heads of those key/value heads keep
        positional keys and start silent (o = 0); their queries and outputs are free to learn.
    layer 1, head 0 (induction): on low-frequency RoPE pairs only (rotation by the distance
        must not scramble the match; rope_theta 1e10 makes 11 of 16 pairs turn less than
        one radian over 1,000 tokens): q_t = SHARP * R^T u_t against k_n = U^T u_n on the
        slowest half of the pairs, and q_t = SHARP_PREV * U^T u_t against k_n = U2^T u_n on
        the `PREV_PAIRS` next slowest, so q_t . k_n is large where x_{n-1} = x_t and larger
        still where x_{n-2} = x_{t-1} too; its value R^T u_n is written back as
        GAIN * R R^T u_n, which the tied unembedding reads as a vote for x_n (layer 0 has
        read R already, so the copy may reuse it and leave a quarter of the residual free).
    layer 1, head 1 (pointer): shares head 0's keys and values (GQA) and its output GAIN * R;
        only its query is free. It copies the token at a place it learns to find by what
        came before it: the first word of a title after "Title:", of an answer after
        "Title:" in the results, where no token of the agent's own text has stood before
        and a match by content cannot start the copy.

Matching two tokens is what lets it copy a question: in "What is the length of the Qysur
River?" a one-token match after the second "the" is a coin toss between "length" and
"Qysur". What the circuit measures and buys: docs/tiny-model.md; how this placement was
chosen: docs/log.md.

The circuit never names a token (it reads whatever the embeddings are). `planted` lists the
rows and columns it owns; `freeze` keeps them fixed.
"""

from __future__ import annotations

import math

from minisearch.errors import UserError

LAYERS = (0, 1)
ALPHA, SHARP, SHARP_PREV, GAIN, PEAK = 0.1, 30.0, 8.0, 3.0, 30.0
PREV_PAIRS = 3  # RoPE pairs of layer 1 head 0 that match the previous token


def heads_per_kv(config) -> int:
    """Query heads per key/value head (GQA); head h2 = this is the first of key/value head 1."""
    return config.num_attention_heads // config.num_key_value_heads


def plant(model, seed: int = 0) -> None:
    """Write the circuit into heads 0 and h2 of layer 0 and heads 0 and 1 of layer 1 of a
    Qwen2-style model (in place)."""
    import torch

    config = model.config
    a0, a1 = (model.model.layers[i].self_attn for i in LAYERS)
    d, width = a0.head_dim, config.hidden_size
    if width < 3 * d:
        raise UserError(f"a planted copy head needs hidden_size >= 3 * head_dim ({width} < {3 * d}); "
                        "use more heads or copy_head: false")
    h2 = heads_per_kv(config)
    if config.num_key_value_heads < 2 or h2 < 2:
        raise UserError("a planted copy head needs 2+ key/value heads, each shared by 2+ query heads; "
                        "or copy_head: false")
    half = d // 2
    basis, _ = torch.linalg.qr(torch.randn(width, width, generator=torch.Generator().manual_seed(seed)))
    U, R, U2 = (basis[:, i * d:(i + 1) * d] for i in range(3))          # (width, d) each
    theta = config.rope_parameters["rope_theta"] ** (-torch.arange(half) * 2 / d)  # (half,) RoPE frequencies
    amp = (theta.sqrt() * PEAK * math.sqrt(d) / theta.sqrt().sum()).sqrt()

    def back(s):  # a query bias whose score through RoPE peaks s positions back
        return torch.cat([amp * torch.cos(-s * theta), amp * torch.sin(-s * theta)])

    def dims(pairs):  # RoPE pair j rotates dims j and j + half together
        return [*pairs, *(j + half for j in pairs)]

    now = dims(range(half // 2, half))                             # the slowest half of the RoPE pairs
    prev = dims(range(half // 2 - PREV_PAIRS, half // 2))          # the next slowest
    match_q, match_k = torch.zeros(d, width), torch.zeros(d, width)
    match_q[now], match_k[now] = SHARP * R.T[:len(now)], U.T[:len(now)]
    match_q[prev], match_k[prev] = SHARP_PREV * U.T[:len(prev)], U2.T[:len(prev)]
    with torch.no_grad():
        for head, kv, s, out in ((0, 0, 1, U), (h2, 1, 2, U2)):
            q, k = slice(head * d, (head + 1) * d), slice(kv * d, (kv + 1) * d)
            a0.q_proj.weight[q], a0.q_proj.bias[q] = 0, back(s)
            a0.k_proj.weight[k], a0.k_proj.bias[k] = 0, torch.cat([amp, torch.zeros(half)])
            a0.v_proj.weight[k], a0.v_proj.bias[k] = R.T, 0
            a0.o_proj.weight[:, q] = ALPHA * out
        for head in (*range(1, h2), *range(h2 + 1, 2 * h2)):  # the other heads of those key/value heads:
            a0.o_proj.weight[:, head * d:(head + 1) * d] = 0  # positional only; they start silent
        a1.q_proj.weight[:d], a1.q_proj.bias[:d] = match_q, 0
        a1.k_proj.weight[:d], a1.k_proj.bias[:d] = match_k, 0
        a1.v_proj.weight[:d], a1.v_proj.bias[:d] = R.T, 0  # the copied code is the matched one
        a1.o_proj.weight[:, :d] = GAIN * R
        a1.o_proj.weight[:, d:2 * d] = GAIN * R  # head 1: the same keys and copy, its query free (a pointer)


def planted(layer: int, d: int, h2: int) -> dict[str, list[slice]]:
    """The rows of q, k, v (and columns of o) the circuit owns in `layer`; h2 = heads per kv head."""
    head0, head2 = slice(0, d), slice(h2 * d, (h2 + 1) * d)
    if layer == 0:
        return {"q_proj": [head0, head2], "k_proj": [slice(0, 2 * d)], "v_proj": [slice(0, 2 * d)],
                "o_proj": [head0, head2]}
    return {"q_proj": [head0], "k_proj": [head0], "v_proj": [head0], "o_proj": [slice(0, 2 * d)]}


def freeze(model) -> None:
    """Zero the gradient of the planted weights, so training learns around them."""
    import torch

    for i in LAYERS:
        attn = model.model.layers[i].self_attn
        owned = planted(i, attn.head_dim, heads_per_kv(model.config))
        for name in ("q_proj", "k_proj", "v_proj"):
            proj = getattr(attn, name)
            for p in (proj.weight, proj.bias):
                mask = torch.ones_like(p)
                for rows in owned[name]:
                    mask[rows] = 0
                p.register_hook(lambda g, m=mask: g * m)
        mask = torch.ones_like(attn.o_proj.weight)
        for cols in owned["o_proj"]:
            mask[:, cols] = 0
        attn.o_proj.weight.register_hook(lambda g, m=mask: g * m)
