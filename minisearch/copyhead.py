"""A planted induction circuit: the tiny CPU model copies by content from its first step.

A search agent copies: the title from its prompt into a query, a name from the search results
into its answer. A pretrained LLM does it with induction heads (find where the current token
stood before, predict what followed it), a circuit that forms late in pretraining, after far
more tokens than a CPU warm-up reads. Measured with `bench/induction.py`: a 600-step warm-up
from random weights learns no copy by content, whatever the copy exercises (fixed or random
offsets, random tokens, GQA off, longer blocks), and a planted circuit left trainable is
overwritten within 150 steps. So `minisearch model init` builds the circuit into two heads
and the warm-up keeps those weights fixed; everything else learns as before.

With d = head_dim, e_t the token embedding, u = RMSNorm(residual) and three orthonormal
d-dimensional subspaces of the residual, U (where the previous token is written), R (the
token code the match reads) and P (the token code that is copied):

    layer 0, head 0 (previous token): q = b_q, k = b_k (no weights, only biases); through RoPE
        the score is sum_j |b_j|^2 cos((t - n - 1) theta_j), highest one position back
        (`PEAK` is its height in logits). It writes o_t = ALPHA * U R^T u_{t-1}.
    layer 1, head 0 (induction): q_t = SHARP * R^T u_t, k_n = U^T u_n, on the low-frequency
        half of the RoPE pairs only (rotation by the distance must not scramble the match), so
        q_t . k_n is large where x_{n-1} = x_t; its value P^T u_n is written back as
        GAIN * P P^T u_n, which the tied unembedding reads as a vote for x_n.

The circuit never names a token (it reads whatever the embeddings are) and, planted in a
random model, repeats a random token sequence 0.7 of the time. Frozen are rows [0, d) of q, k
and v (weights and biases) and columns [0, d) of o in layers 0 and 1; q head 1 shares key/value
head 0, so its output columns in layer 0 start at zero and learn their own use.
"""

from __future__ import annotations

import math

from minisearch.errors import UserError

LAYERS = (0, 1)
ALPHA, SHARP, GAIN, PEAK = 0.1, 30.0, 3.0, 30.0


def plant(model, seed: int = 0) -> None:
    """Write the circuit into heads 0 of layers 0 and 1 of a Qwen2-style model (in place)."""
    import torch

    config = model.config
    a0, a1 = (model.model.layers[i].self_attn for i in LAYERS)
    d, width = a0.head_dim, config.hidden_size
    if width < 3 * d:
        raise UserError(f"a planted copy head needs hidden_size >= 3 * head_dim ({width} < {3 * d}); "
                        "use more heads or copy_head: false")
    half = d // 2
    basis, _ = torch.linalg.qr(torch.randn(width, width, generator=torch.Generator().manual_seed(seed)))
    U, R, P = basis[:, :d], basis[:, d:2 * d], basis[:, 2 * d:3 * d]    # (width, d) each
    theta = config.rope_parameters["rope_theta"] ** (-torch.arange(half) * 2 / d)  # (half,) RoPE frequencies
    amp = (theta.sqrt() * PEAK * math.sqrt(d) / theta.sqrt().sum()).sqrt()
    low = [*range(half // 2, half), *range(half + half // 2, d)]       # low-frequency RoPE dims
    match_q, match_k = torch.zeros(d, width), torch.zeros(d, width)
    match_q[low] = SHARP * R.T[:len(low)]
    match_k[low] = U.T[:len(low)]
    with torch.no_grad():
        a0.q_proj.weight[:d], a0.q_proj.bias[:d] = 0, torch.cat([amp * torch.cos(-theta), amp * torch.sin(-theta)])
        a0.k_proj.weight[:d], a0.k_proj.bias[:d] = 0, torch.cat([amp, torch.zeros(half)])
        a0.v_proj.weight[:d], a0.v_proj.bias[:d] = R.T, 0
        a0.o_proj.weight[:, :d] = ALPHA * U
        a0.o_proj.weight[:, d:2 * d] = 0
        a1.q_proj.weight[:d], a1.q_proj.bias[:d] = match_q, 0
        a1.k_proj.weight[:d], a1.k_proj.bias[:d] = match_k, 0
        a1.v_proj.weight[:d], a1.v_proj.bias[:d] = P.T, 0
        a1.o_proj.weight[:, :d] = GAIN * P


def freeze(model) -> None:
    """Zero the gradient of the planted weights, so training learns around them."""
    import torch

    for i in LAYERS:
        attn = model.model.layers[i].self_attn
        d = attn.head_dim
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            for p in (proj.weight, proj.bias):
                mask = torch.ones_like(p)
                mask[:d] = 0
                p.register_hook(lambda g, m=mask: g * m)
        mask = torch.ones_like(attn.o_proj.weight)
        mask[:, :d] = 0
        attn.o_proj.weight.register_hook(lambda g, m=mask: g * m)
