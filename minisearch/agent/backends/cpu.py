"""The CPU backend: transformers + peft on any torch device (what tests and `make demo` use).

    backend = CpuBackend("runs/demo/warmup", lora_rank=8)
    outs = backend.generate([prompt_ids], n=4, max_new_tokens=64, stop=["</search>", "</answer>"])

Sampling is `sampler.CachedSampler` (`sampler="cached"`, the default): each trajectory's keys
and values kept across its turns, a group's prompt read once, stops checked per token. It reads
a copy of the model with the LoRA merged in, made again whenever a trainable weight changed, in
`sample_dtype` ("auto": bfloat16 for a pretrained model on a CPU with native bf16 instructions,
the model's own dtype for the tiny model). Scoring and training (SFT, DAPO) compute in
`train_dtype`, resolved the same way: a pretrained model's body under bf16 autocast, its weights,
gradients and output layer in float32 (`scoring.py`). `sampler="hf"` (backend `cpu-hf`) is transformers'
`generate`, batched with left padding: the reference the cached sampler is tested against.
Either way a row stops at the end-of-turn token or at the first stop string (kept), and the
log-probs are those of the distribution sampled from (after temperature and top-p).
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from minisearch.agent.backends import Backend, Completion, free_memory, per_prompt
from minisearch.agent.backends.adapters import check_adapter, read_adapter
from minisearch.agent.backends.sampler import CachedSampler, use_decode_attention, weights_version
from minisearch.agent.protocol import TAGS
from minisearch.errors import UserError
from minisearch.records import tiny_model_info

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class CpuBackend(Backend):
    def __init__(self, model: str | Path, adapter: str | Path | None = None, lora_rank: int = 0,
                 device: str = "cpu", dtype: torch.dtype = torch.float32, train_embeddings: bool | None = None,
                 lora_only: bool = False, sampler: str = "cached", sample_dtype: str = "auto",
                 train_dtype: str = "auto"):
        hf_logging.disable_progress_bar()  # a bar per model load would clutter chat and stage logs
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
        except OSError as e:
            raise _not_a_model(model, e) from e
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if train_embeddings is None:  # auto: a model built by `minisearch init` has no pretrained embeddings
            train_embeddings = bool(tiny_model_info(model)) and not lora_only
        if lora_only and train_embeddings:
            raise UserError("a LoRA-only adapter (what vLLM can serve) cannot train the embeddings too")
        self.lora_only = lora_only  # no embedding rows in the adapter: vLLM serves LoRA A/B only
        self.source, self.device, self.dtype, self.train_embeddings = model, device, dtype, train_embeddings
        self.lora_rank = lora_rank
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        self.sampler = sampler
        tiny = bool(tiny_model_info(model))
        self.sample_dtype = compute_dtype(sample_dtype, dtype, tiny, device, "sample_dtype")
        scoring = compute_dtype(train_dtype, dtype, tiny, device, "train_dtype")
        self.autocast_dtype = None if scoring == dtype else scoring  # `Scorer.autocast`
        self._cached: CachedSampler | None = None
        self._copy, self._copy_of = None, None  # the bf16 sampling copy, and the weights it was made from
        self._loads = 0
        self.model = self._load(adapter, lora_rank)

    def _load(self, adapter, rank):
        """The base model from disk with the adapter (or a new LoRA of `rank`, or none)."""
        try:
            base = AutoModelForCausalLM.from_pretrained(str(self.source), dtype=self.dtype)
        except OSError as e:
            raise _not_a_model(self.source, e) from e
        rows = [] if self.lora_only else tag_token_ids(self.tokenizer)
        model = _with_lora(base, adapter, rank, rows, self.train_embeddings)
        self._loads += 1  # a new model object: any sampling copy and stored prefix is stale
        return model.to(self.device)

    def use_adapter(self, adapter: str | Path | None) -> None:
        """Score and sample with the adapter at `adapter` (None: the bare base) from now on.
        On the CPU the base is read again: small, and no engine holds it."""
        self._drop_sampling()
        self.model = None
        free_memory()
        self.model = self._load(adapter, 0)

    def reset_adapter(self, seed: int) -> None:
        """A fresh LoRA of the backend's rank, initialised from `seed`, in place of the current one."""
        self._drop_sampling()
        self.model = None
        free_memory()
        torch.manual_seed(seed)
        self.model = self._load(None, self.lora_rank)

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    def sync_lora(self) -> None:
        """The weights changed: the sampler's stored keys and values are given back now (they
        would be dropped at its next call anyway: it checks the weights' versions)."""
        if self._cached is not None:
            self._cached.forget()

    def close(self) -> None:
        self._drop_sampling()
        super().close()

    def _drop_sampling(self) -> None:
        """Let go of the sampler and its copy (before the model they read is replaced or freed)."""
        self._cached = self._copy = None

    def _policy(self):
        """What samples: a copy of the model with its LoRA merged into the weights, in
        `sample_dtype`, made again when a trainable weight changed since (an optimiser step) or
        another model was loaded; a model without an adapter, in its own dtype, is read as it is.
        peft's unmerged LoRA layers cost a third of a tiny-model decode step; a copy costs ~35 ms
        for the tiny model, ~1.3 s for SmolLM2, once per update (docs/results.md)."""
        if self.sample_dtype == self.dtype and not hasattr(self.model, "merge_and_unload"):
            return use_decode_attention(self.model)  # as a copy attends; a pass of more than one token keeps SDPA
        version = (self._loads, weights_version(self.model))
        if self._copy is None or self._copy_of != version:
            self._copy = None  # the sampler still holds the old copy until `use` hands it the new one
            gc.disable()  # a deep copy makes thousands of objects: no collection pass in the middle of it
            try:
                live = copy.deepcopy(self.model)
            finally:
                gc.enable()
            with torch.no_grad():
                merged = live.merge_and_unload() if hasattr(live, "merge_and_unload") else live
            self._copy = use_decode_attention(merged.to(self.sample_dtype).eval().requires_grad_(False))
            self._copy_of = version
        return self._copy

    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int | list[int] = 128,
                 temperature: float = 1.0, top_p: float = 1.0, stop: list[str] | tuple[str, ...] = (),
                 batch_size: int = 16) -> list[list[Completion]]:
        """n continuations of each prompt (a list of token ids), each at most its own
        `max_new_tokens` long (one int for all, or one per prompt); `batch_size`: rows of one
        HF `generate` call (the cached sampler decodes up to 64 rows together)."""
        if self.sampler == "hf":
            return self._hf_generate(prompts, n, max_new_tokens, temperature, top_p, stop, batch_size)
        policy = self._policy()
        if self._cached is None:
            self._cached = CachedSampler(policy, self.tokenizer)
        elif self._cached.model is not policy:
            self._cached.use(policy)
        return self._cached.generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_p=top_p, stop=stop)

    @torch.no_grad()
    def _hf_generate(self, prompts, n, max_new_tokens, temperature, top_p, stop, batch_size):
        self.model.eval()
        limits = per_prompt(max_new_tokens, prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: dict[int, list[Completion]] = {}
        per_batch = max(1, batch_size // max(1, n))
        for start in range(0, len(order), per_batch):
            chunk = order[start:start + per_batch]
            outs = self._generate_batch([prompts[i] for i in chunk], n, [limits[i] for i in chunk], temperature,
                                        top_p, list(stop))
            for j, i in enumerate(chunk):
                results[i] = outs[j * n:(j + 1) * n]
        return [results[i] for i in range(len(prompts))]

    def _generate_batch(self, prompts, n, limits, temperature, top_p, stop) -> list[Completion]:
        """The batch runs to its longest limit; each row is cut to its own prompt's (row r is prompt r // n)."""
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max(1, *limits), do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_p=top_p, top_k=None,
            num_return_sequences=n, stop_strings=stop or None, tokenizer=self.tokenizer, pad_token_id=pad,
            eos_token_id=self.eos_id, return_dict_in_generate=True, output_scores=True)
        new = out.sequences[:, width:]                                  # (rows, steps)
        steps = torch.stack(out.scores, dim=1).float()                  # (rows, steps, vocab)
        logprobs = torch.log_softmax(steps, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        return [self._completion(new[r].tolist()[:limits[r // n]], logprobs[r].tolist(), stop, limits[r // n])
                for r in range(new.shape[0])]

    def _completion(self, ids: list[int], logprobs: list[float], stop: list[str], limit: int) -> Completion:
        """Cut a generated row where it really ended: end of turn, or the first stop string."""
        end, finish = len(ids), "length"
        if self.eos_id in ids:
            end, finish = ids.index(self.eos_id) + 1, "stop"
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=False)
        hits = [text.find(s) + len(s) for s in stop if s in text]
        if hits:
            cut = min(hits)
            lo, hi = 1, end  # the fewest tokens whose text holds the stop string
            while lo < hi:
                mid = (lo + hi) // 2
                if len(self.tokenizer.decode(ids[:mid], skip_special_tokens=False)) >= cut:
                    hi = mid
                else:
                    lo = mid + 1
            end, finish = lo, "stop"
        elif finish == "length" and end < limit:
            finish = "stop"  # generate ended early without our tokens: treat as a finished turn
        ids = ids[:end]
        return Completion(ids, logprobs[:end], self.tokenizer.decode(ids, skip_special_tokens=False), finish)

    def save_adapter(self, path: str | Path) -> Path:
        if not hasattr(self.model, "peft_config"):
            raise UserError("this backend has no LoRA adapter to save (load it with lora_rank > 0)")
        self.model.save_pretrained(str(path))
        return Path(path)


SAMPLERS = ("cached", "hf")
SAMPLE_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX): bf16 matmuls are then ~3x
    fp32's (docs/results.md); without them torch emulates bf16, slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def compute_dtype(name: str, dtype: torch.dtype, tiny: bool, device: str, what: str) -> torch.dtype:
    """The dtype sampling (`sample_dtype`) or scoring and training (`train_dtype`) computes in.
    "auto": bfloat16 for a pretrained model on a CPU with native bf16, else the model's own. The
    tiny model stays in its dtype: its size makes it overhead-bound (bf16 buys nothing) and its
    planted copy head's sharp attention is tuned in float32."""
    if name not in SAMPLE_DTYPES:
        raise UserError(f"unknown {what} {name!r}: choose one of {', '.join(SAMPLE_DTYPES)}")
    if name != "auto":
        return SAMPLE_DTYPES[name]
    if tiny or dtype != torch.float32 or device != "cpu" or not cpu_has_bf16():
        return dtype
    return torch.bfloat16


def _not_a_model(model, e: OSError) -> UserError:
    return UserError(f"cannot load a model from {model} ({e}); for the tiny CPU model run "
                     "`minisearch init --corpus CORPUS --out DIR`")


def tag_token_ids(tokenizer) -> list[int]:
    """Ids of the protocol tags that are single added tokens (the tiny model's).

    Their embedding rows were added after pre-training (the warm-up reads no tags), so
    LoRA alone could never learn to write them; the adapter trains these rows too (peft's
    trainable tokens; with tied embeddings that covers the output layer). Models whose
    tokenizer spells the tags with ordinary tokens (Qwen2.5) get an empty list.
    """
    added = {t.content: i for i, t in tokenizer.added_tokens_decoder.items()}
    return [added[t] for t in TAGS if t in added]


def _with_lora(base, adapter, rank, train_ids, train_embeddings=False):
    """A new LoRA (rank > 0), the saved one at `adapter`, or the bare model.

    With `train_embeddings` the adapter holds a trained copy of the whole embedding matrix
    (peft's modules_to_save, tied to the output layer), else only the tag rows. For the tiny
    model this is what makes SFT work (a LoRA alone never learns to copy the page title into
    its query: docs/training.md). For a 1.5B model the embeddings are most of a checkpoint and
    are left frozen.

    Without `train_embeddings` a loaded adapter's embeddings (its copy, or its tag rows) stay as
    they were trained. Downstream QA SFT of the tiny model wants that: with the rows of its
    training questions' names free it learns those names by heart and miscopies held-out ones.
    """
    if adapter is None and rank <= 0:
        return base
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        saved = read_adapter(adapter)
        model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
        check_adapter(model, saved, adapter)
        if not train_embeddings:
            for name, param in model.named_parameters():
                if "modules_to_save" in name or "trainable_tokens" in name:
                    param.requires_grad_(False)
        return model
    if train_embeddings:
        extra = {"modules_to_save": ["embed_tokens"], "ensure_weight_tying": True}
    else:
        extra = {"trainable_token_indices": {"embed_tokens": train_ids}} if train_ids else {}
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=LORA_TARGETS,
                        task_type="CAUSAL_LM", **extra)
    return get_peft_model(base, config)
