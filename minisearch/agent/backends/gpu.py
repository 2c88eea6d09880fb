"""The GPU backend: Unsloth 4-bit + LoRA, sampling through its in-process vLLM engine.

    backend = GpuBackend("Qwen/Qwen2.5-1.5B-Instruct", lora_rank=16)     # pip install -e '.[gpu]'

`FastLanguageModel.from_pretrained(..., load_in_4bit=True, fast_inference=True)` loads the
weights once and hands them to a vLLM engine in the same process (`model.vllm_engine`);
training runs through the Unsloth model with gradient checkpointing. After each update
`sync_lora()` copies the current adapter into vLLM (`model.load_lora(..., load_tensors=True)`
returns the LoRA request), and sampling goes through `VllmSampler`, which takes any
`vllm.LLM`. Written against unsloth 2026.10.7 / unsloth_zoo; unsloth refuses to import
without a CUDA device, so nothing here is imported unless this backend is chosen.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from minisearch.agent.backends import sequence_logprobs
from minisearch.agent.backends.cpu import LORA_TARGETS
from minisearch.agent.backends.vllm_sampler import VllmSampler
from minisearch.errors import UserError


class GpuBackend:
    def __init__(self, model: str | Path, adapter: str | Path | None = None, lora_rank: int = 16,
                 max_seq_length: int = 4096, gpu_memory_utilization: float = 0.5, seed: int = 0):
        import torch

        if not torch.cuda.is_available():
            raise UserError("the gpu backend needs a CUDA GPU; on this machine use --backend cpu")
        try:
            from unsloth import FastLanguageModel
        except ImportError as e:
            raise UserError(f"the gpu backend needs the gpu extra ({e}): pip install -e '.[gpu]'") from e
        base, self.tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(model), max_seq_length=max_seq_length, load_in_4bit=True, fast_inference=True,
            max_lora_rank=lora_rank, gpu_memory_utilization=gpu_memory_utilization)
        self.model = FastLanguageModel.get_peft_model(
            base, r=lora_rank, lora_alpha=2 * lora_rank, target_modules=LORA_TARGETS,
            use_gradient_checkpointing="unsloth", random_state=seed)
        if adapter is not None:
            self._load_adapter(Path(adapter))
        self.sampler = VllmSampler(self.model.vllm_engine)
        self._scratch = tempfile.mkdtemp(prefix="minisearch-lora-")
        self.sync_lora()

    def _load_adapter(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = folder / "adapter_model.safetensors"
        if not weights.is_file():
            raise UserError(f"no adapter at {folder} (adapter_model.safetensors missing)")
        set_peft_model_state_dict(self.model, load_file(str(weights)))

    def sync_lora(self) -> None:
        """Give vLLM the adapter as it is now (call after every optimiser step)."""
        self.sampler.set_lora(self.model.load_lora(self._scratch, load_tensors=True))

    def generate(self, prompts: list[list[int]], **kwargs):
        return self.sampler.generate(prompts, **kwargs)

    def token_logprobs(self, sequences: list[list[int]], grad: bool = False, entropy: bool = False):
        return sequence_logprobs(self.model, self.tokenizer.pad_token_id, sequences, grad, entropy)

    def save_adapter(self, path: str | Path) -> Path:
        self.model.save_pretrained(str(path))
        return Path(path)
