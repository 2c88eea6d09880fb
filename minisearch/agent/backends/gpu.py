"""The GPU backend: Unsloth 4-bit + LoRA, sampling through its in-process vLLM engine.

    backend = GpuBackend("Qwen/Qwen2.5-1.5B-Instruct", lora_rank=16)     # pip install -e '.[gpu]'

`FastLanguageModel.from_pretrained(..., load_in_4bit=True, fast_inference=True)` loads the
weights once and hands them to a vLLM engine in the same process (`model.vllm_engine`);
training runs through the Unsloth model with its gradient checkpointing. After every change
of the weights `sync_lora()` gives vLLM the live adapter as a LoRA request with a new id
(`model.load_lora(..., load_tensors=True)`; vLLM caches an id's weights, so a reused id would
sample the old adapter). Saved adapters of the same base are sampled from their folders,
each under a new id, on the same engine (`use_adapter`).

`close()` frees the engine for the next stage's (a recipe opens six, one after another, in one
process; each is sized from the memory free when it starts): the engine core is shut down,
then unsloth_zoo deletes the engine (`vllm_sampler.delete_engine`), then every reference
Unsloth keeps to it (`vllm_engine`, `fast_generate`, `fast_generate_batches` on the model and
the models it wraps) and the model go, and the free CUDA memory is compared with what was free
before the model loaded: a warning gives the figures when more than `HELD_GIB` did not come back.

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
import warnings
from pathlib import Path

from minisearch.agent.backends import Backend, free_memory
from minisearch.agent.backends.adapters import load_into, reset_lora, saved_rank
from minisearch.agent.backends.cpu import LORA_TARGETS
from minisearch.agent.backends.vllm_sampler import VllmSampler, before_engine, new_lora_id
from minisearch.errors import UserError

HIDDEN = "UNSLOTH_RETURN_HIDDEN_STATES"
ENGINE_REFS = ("vllm_engine", "fast_generate", "fast_generate_batches")  # where Unsloth keeps the engine
HELD_GIB = 1.0  # memory a closed backend may keep (CUDA libraries' workspaces, Unsloth's offload buffers)


class GpuBackend(Backend):
    def __init__(self, model: str | Path, adapter: str | Path | None = None, lora_rank: int = 16,
                 max_seq_length: int = 4096, gpu_memory_utilization: float = 0.5, seed: int = 0):
        import torch

        if not torch.cuda.is_available():
            raise UserError("the gpu backend needs a CUDA GPU; on this machine use model_backend: cpu")
        try:
            from unsloth import FastLanguageModel
        except ImportError as e:
            raise UserError(f"the gpu backend needs the gpu extra ({e}): make install-gpu") from e
        lora_rank = (saved_rank(adapter) if adapter is not None else None) or lora_rank
        self._free_before = torch.cuda.mem_get_info()[0]  # what close() should give back
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

    @property
    def max_context(self) -> int:
        """The engine's real max_model_len, read back after it started."""
        return self.sampler.max_model_len

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
        """Shut the vLLM engine down and delete it, drop the model, give the memory back, and
        warn with the figures if it did not come back (see the module's docstring)."""
        if getattr(self, "sampler", None) is not None:
            self.sampler.close()
            self.sampler = None
        if getattr(self, "model", None) is not None:
            drop_engine_refs(self.model)
        self.model = None
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)
        free_memory()
        if getattr(self, "_free_before", None) is not None:
            import torch

            free, total = torch.cuda.mem_get_info()
            message = memory_not_returned(self._free_before, free, total)
            if message:
                warnings.warn(message, stacklevel=2)


def drop_engine_refs(model) -> None:
    """Remove the engine references Unsloth sets on `model` and on the models it wraps
    (PeftModel -> LoraModel -> the causal LM -> its body): attributes that are not modules
    live in each module's `__dict__`."""
    stack, seen = [model], set()
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name in ENGINE_REFS:
            vars(module).pop(name, None)
        stack += [m for key, m in getattr(module, "_modules", {}).items() if key in ("base_model", "model")]


def memory_not_returned(free_before: int, free_after: int, total: int, held_gib: float = HELD_GIB) -> str | None:
    """What to warn when a closed backend left more than `held_gib` GiB of GPU memory in use
    that was free before it loaded (bytes in, None when it came back).

    >>> memory_not_returned(20 * 2**30, int(19.5 * 2**30), 24 * 2**30) is None
    True
    """
    held = (free_before - free_after) / 2**30
    if held <= held_gib:
        return None
    return (f"the gpu backend closed, but {held:.1f} GiB of GPU memory did not come back (free before the model "
            f"loaded {free_before / 2**30:.1f} GiB, now {free_after / 2**30:.1f} GiB, of {total / 2**30:.1f} GiB). "
            "The next stage's vLLM engine is sized from the free memory, so it gets a smaller KV cache and may "
            "lower its context. If a later stage runs short, stop the run and start it again: `minisearch run "
            "RECIPE` resumes at the stage it was in, in a fresh process with the memory free")
