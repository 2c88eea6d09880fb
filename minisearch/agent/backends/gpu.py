"""The GPU backend: Unsloth 4-bit + LoRA, sampling through its in-process vLLM engine.

    backend = GpuBackend("Qwen/Qwen2.5-1.5B-Instruct", lora_rank=16)     # pip install -e '.[gpu]'

`FastLanguageModel.from_pretrained(..., load_in_4bit=True, fast_inference=True)` loads the
weights once and hands them to a vLLM engine in the same process (`model.vllm_engine`);
training runs through the Unsloth model with its gradient checkpointing. After every change
of the weights `sync_lora()` gives vLLM the live adapter as a LoRA request with a new id
(`model.load_lora(..., load_tensors=True)`; vLLM caches an id's weights, so a reused id would
sample the old adapter). Saved adapters of the same base are sampled from their folders,
each under a new id, on the same engine (`use_adapter`); `close()` deletes the engine.

Scoring never reads `outputs.logits` as logits: with `UNSLOTH_RETURN_HIDDEN_STATES=1` (what
Unsloth's own GRPO sets) the patched forward returns the final hidden states in that field,
and `scoring.py` applies the output layer in chunks. Written against unsloth 2026.10.7 /
unsloth_zoo 2026.10.9 / vllm 0.33.0; unsloth refuses to import without a CUDA device, so
nothing here is imported unless this backend is chosen.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from minisearch.agent.backends import Backend, free_memory
from minisearch.agent.backends.adapters import load_into, reset_lora, saved_rank
from minisearch.agent.backends.cpu import LORA_TARGETS
from minisearch.agent.backends.vllm_sampler import VllmSampler, before_engine, new_lora_id
from minisearch.errors import UserError

HIDDEN = "UNSLOTH_RETURN_HIDDEN_STATES"


class GpuBackend(Backend):
    def __init__(self, model: str | Path, adapter: str | Path | None = None, lora_rank: int = 16,
                 max_seq_length: int = 4096, gpu_memory_utilization: float = 0.5, seed: int = 0):
        import torch

        if not torch.cuda.is_available():
            raise UserError("the gpu backend needs a CUDA GPU; on this machine use --backend cpu")
        try:
            from unsloth import FastLanguageModel
        except ImportError as e:
            raise UserError(f"the gpu backend needs the gpu extra ({e}): make install-gpu") from e
        lora_rank = (saved_rank(adapter) if adapter is not None else None) or lora_rank
        before_engine()  # a bm25s index imports numba, whose llvmlite stops vLLM's start otherwise
        base, self.tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(model), max_seq_length=max_seq_length, load_in_4bit=True, fast_inference=True,
            max_lora_rank=lora_rank, gpu_memory_utilization=gpu_memory_utilization)
        self.model = FastLanguageModel.get_peft_model(
            base, r=lora_rank, lora_alpha=2 * lora_rank, target_modules=LORA_TARGETS,
            use_gradient_checkpointing="unsloth", random_state=seed)
        self.device = "cuda"
        self.bare = False  # True: the base alone (use_adapter(None)), for sampling and scoring
        if adapter is not None:
            load_into(self.model, adapter)
        self.sampler = VllmSampler(self.model.vllm_engine)
        self._scratch = tempfile.mkdtemp(prefix="minisearch-lora-")
        self.sync_lora()

    def sync_lora(self) -> None:
        """Give vLLM the adapter as it is now, under a new id (after every change of the weights)."""
        self.bare = False
        self.sampler.set_lora(self.model.load_lora(self._scratch, load_tensors=True, lora_request_id=new_lora_id()))

    def use_adapter(self, adapter: str | Path | None) -> None:
        """Sample and score with the adapter saved at `adapter` (same base and rank; None: the
        bare base): its weights go into the live LoRA (keys checked) and to vLLM under a new id."""
        if adapter is None:
            self.bare = True
            self.sampler.set_lora(None)
            return
        load_into(self.model, adapter)
        self.sync_lora()

    def reset_adapter(self, seed: int) -> None:
        """A fresh LoRA (B = 0) to train from, on the same engine."""
        reset_lora(self.model, seed)
        self.sync_lora()

    def hidden_states(self, ids, mask):
        """Final hidden states the way Unsloth's GRPO takes them: the patched forward returns them
        in `.logits` while UNSLOTH_RETURN_HIDDEN_STATES=1 (never (B, T, V) logits)."""
        prior = os.environ.get(HIDDEN)
        os.environ[HIDDEN] = "1"
        try:
            with self.model.disable_adapter() if self.bare else contextlib.nullcontext():
                h = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        finally:
            if prior is None:
                os.environ.pop(HIDDEN, None)
            else:
                os.environ[HIDDEN] = prior
        width = self._causal_lm().config.hidden_size
        if h.shape[-1] != width:
            raise RuntimeError(f"Unsloth's forward returned width {h.shape[-1]}, not the hidden size {width}: "
                               f"this unsloth does not honour {HIDDEN}; use the pinned one (make install-gpu)")
        return h

    def set_grad_checkpoint(self, on: bool) -> None:
        """Unsloth's own checkpointing is set at load (`use_gradient_checkpointing="unsloth"`)."""

    def generate(self, prompts: list[list[int]], **kwargs):
        return self.sampler.generate(prompts, **kwargs)

    def save_adapter(self, path: str | Path) -> Path:
        self.model.save_pretrained(str(path))
        return Path(path)

    def close(self) -> None:
        """Delete the vLLM engine (unsloth_zoo's way), drop the model, give the memory back."""
        if getattr(self, "sampler", None) is not None:
            self.sampler.close()
            self.sampler = None
        if self.model is not None:
            with contextlib.suppress(AttributeError):
                del self.model.vllm_engine
        self.model = None
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)
        free_memory()
