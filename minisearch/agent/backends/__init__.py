"""Model backends behind one interface: `cpu` (transformers + peft, any torch device) and
`gpu` (Unsloth 4-bit LoRA with in-process vLLM sampling). Each is imported only when chosen.

A backend holds a model, its tokenizer and a LoRA adapter, and offers:
    generate(prompts, ...)     -> one list of Completion per prompt (token ids, sampler log-probs)
    token_logprobs(sequences)  -> per-token log-probs of given id sequences (for training)
    save_adapter(path)
Work is in token ids end to end, so what a trajectory records is exactly what the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from minisearch.errors import UserError


@dataclass
class Completion:
    """One sampled continuation."""

    token_ids: list[int]
    logprobs: list[float]  # the sampler's log-probability of each token
    text: str
    finish: str  # "stop": a stop string or end of turn; "length": max_new_tokens reached


def sequence_logprobs(model, pad_id: int, sequences: list[list[int]], grad: bool = False,
                      entropy: bool = False):
    """log p(token_t | tokens_<t) for t >= 1 of each sequence, by the training model.

    Returns one tensor of length len(seq) - 1 per sequence; with `grad` they carry gradients.
    With `entropy`, returns (log-probs, entropies): the entropy of each next-token
    distribution, computed without gradients.
    """
    import torch

    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.tensor([list(s) + [pad_id] * (width - len(s)) for s in sequences], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
        logsm = torch.log_softmax(logits, dim=-1)                                    # (B, T-1, V)
        lp = logsm.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)                  # (B, T-1)
    lps = [lp[i, :len(s) - 1] for i, s in enumerate(sequences)]
    if not entropy:
        return lps
    with torch.no_grad():
        ent = -(logsm.exp() * logsm).sum(-1)                                         # (B, T-1)
    return lps, [ent[i, :len(s) - 1] for i, s in enumerate(sequences)]


def load_backend(kind: str, model, adapter=None, lora_rank: int = 0, train_embeddings: bool | None = None):
    """The backend named `kind` ("cpu" or "gpu"), imported only now. `train_embeddings` is the
    cpu backend's (see `CpuBackend`); the gpu backend never trains the embeddings."""
    if kind == "gpu":
        if train_embeddings:
            raise UserError("the gpu backend trains LoRA only (4-bit base, embeddings fixed): "
                            "leave train_embeddings unset or false")
        from minisearch.agent.backends.gpu import GpuBackend

        return GpuBackend(model, adapter=adapter, lora_rank=lora_rank or 16)
    if kind != "cpu":
        raise UserError(f"unknown backend {kind!r}: choose cpu or gpu")
    from minisearch.agent.backends.cpu import CpuBackend

    return CpuBackend(model, adapter=adapter, lora_rank=lora_rank, train_embeddings=train_embeddings)
