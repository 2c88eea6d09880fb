"""A batched multi-turn sampler for any Hugging Face causal LM on the CPU (the cpu backend's).

    sampler = CachedSampler(model, tokenizer)
    outs = sampler.generate(prompts, n=1, max_new_tokens=[64, 48], temperature=1.0, stop=STOP)

What HF `generate` does per call and this loop does not:
- re-read the whole context at every turn. A turn's prompt is the last turn's prompt, its
  completion and the tool's block: the keys and values of the longest prompt prefix this
  sampler computed in its previous call are reused, and only the new tokens are prefilled;
- read a group's shared prompt G times: identical contexts are prefilled once;
- grow the cache by concatenation: one preallocated (2, layers, rows, kv heads, length, head
  dim) buffer per batch, written in place, its finished rows dropped as they pile up;
- decode stop strings at every step: each token's text is looked up once in a table, and a
  row stops when the tail of its text holds a stop string (any spelling the tokenizer
  produces) or at the end-of-turn token;
- keep batch x steps x vocabulary scores: only each sampled token's log-probability.

Sampling is transformers' own temperature and top-p warpers; the log-probabilities are those
of the distribution sampled from (after the warpers), the raw model's at temperature 0, as
with `generate`. Cached keys and values belong to the weights that made them: they are
dropped when any trainable weight changes (torch's in-place version counters) or on `forget()`.
Layout of a row in a buffer: [left padding][context][decoded tokens], a boolean mask marks
the real positions; position ids count real tokens only, so padding never shifts RoPE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from minisearch.agent.backends import Completion, per_prompt


class _BufferLayer(DynamicLayer):
    """One layer of a `_Batch`'s buffer as transformers' cache layer: a forward writes its new
    keys and values at the fill point and attends to a view up to it."""

    def __init__(self, kv: torch.Tensor, layer: int, length: int):
        super().__init__()
        self.kv, self.layer, self.length, self.is_initialized = kv, layer, length, True
        self.keys, self.values = kv[0, layer, :, :, :length], kv[1, layer, :, :, :length]

    def update(self, key_states, value_states, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        self.kv[0, self.layer, :, :, self.length:end] = key_states
        self.kv[1, self.layer, :, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.kv[0, self.layer, :, :, :end], self.kv[1, self.layer, :, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0


@dataclass
class _Prefix:
    """Keys and values of `ids`, shape (2, layers, kv heads, len(ids), head dim)."""

    ids: list[int]
    kv: torch.Tensor


class CachedSampler:
    """Samples continuations of token-id prompts from `model`, keeping each row's cache for
    the next call (see the module docstring). `rows`: the most rows decoded together;
    `prefill_tokens`: the most tokens (rows x width) in one prefill forward; `store_bytes`: the
    most memory the kept caches take (rows past it are prefilled again at their next turn)."""

    def __init__(self, model, tokenizer, rows: int = 64, prefill_tokens: int = 8192, store_bytes: int = 4 << 30):
        self.model, self.tokenizer = model, tokenizer
        self.rows, self.prefill_tokens, self.store_bytes = rows, prefill_tokens, store_bytes
        self.eos_id, self.pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
        self._pieces: list[str] | None = None
        self._store: list[_Prefix] = []
        self._weights = None  # what the stored prefixes were computed with

    # -- the cache between calls --------------------------------------------------------------------
    def use(self, model) -> None:
        """Sample from `model` from now on (a refreshed copy of the weights): the stored prefixes go."""
        self.model = model
        self.forget()

    def forget(self) -> None:
        """Drop every stored prefix (the weights changed, or the memory is wanted back)."""
        self._store = []

    def _fingerprint(self):
        return id(self.model), weights_version(self.model)

    def _lookup(self, context: list[int]) -> _Prefix | None:
        """The longest stored prefix whose ids begin `context`."""
        best = None
        for p in self._store:
            n = len(p.ids)
            if n <= len(context) and (best is None or n > len(best.ids)) and context[:n] == p.ids:
                best = p
        return best

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int | list[int] = 128,
                 temperature: float = 1.0, top_p: float = 1.0, stop=()) -> list[list[Completion]]:
        """n continuations of each prompt, each at most its own `max_new_tokens` (one int for
        all, or one per prompt); a continuation ends after the end-of-turn token or the token
        that completes a stop string (kept)."""
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        self.model.eval()
        if self._weights != self._fingerprint():
            self.forget()
        limits = per_prompt(max_new_tokens, prompts)
        rows = [(i, list(prompts[i]), limits[i]) for i in range(len(prompts)) for _ in range(n)]
        contexts = self._prefill({tuple(p[:-1]) for _, p, _ in rows})
        store, out = [], []
        for start in range(0, len(rows), self.rows):
            chunk = rows[start:start + self.rows]
            out += self._decode(chunk, [contexts[tuple(p[:-1])] for _, p, _ in chunk], temperature, top_p,
                                tuple(stop), store)
        self._store, self._weights = store, self._fingerprint()
        grouped: list[list[Completion]] = [[] for _ in prompts]
        for (i, _, _), c in zip(rows, out):
            grouped[i].append(c)
        return grouped

    def _layout(self):
        """(layers, kv heads, head dim, dtype) of the model's keys and values."""
        cfg = self.model.config.get_text_config(decoder=True)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        return cfg.num_hidden_layers, kv_heads, head_dim, next(self.model.parameters()).dtype

    def _buffer(self, rows: int, length: int) -> torch.Tensor:
        layers, heads, dim, dtype = self._layout()
        return torch.zeros(2, layers, rows, heads, length, dim, dtype=dtype, device=self._device)

    @property
    def _device(self):
        return next(self.model.parameters()).device

    def _forward(self, kv, filled: int, ids, positions, mask):
        """One forward over `ids` (rows, width) on top of `filled` buffer positions; returns the
        last position's logits (rows, vocab) in float32. `mask`: (rows, 1, width, filled + width).
        `logits_to_keep=1`: the output layer runs on the last position only, never (rows, width, vocab)."""
        layers = kv.shape[1]
        cache = Cache(layers=[_BufferLayer(kv, layer, filled) for layer in range(layers)])
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                         logits_to_keep=1)
        return out.logits[:, -1].float()

    def _prefill(self, contexts: set[tuple[int, ...]]) -> dict[tuple[int, ...], _Prefix]:
        """Keys and values of each distinct context: a stored prefix's, extended by the tokens
        after it. Rows of one forward are grouped by how much is new; a row whose new part is
        shorter than the widest re-reads the last tokens of its prefix, so no padding ever
        sits between a row's cached and new tokens (only at its left)."""
        done: dict[tuple[int, ...], _Prefix] = {}
        todo = []
        for ctx in contexts:
            hit = self._lookup(list(ctx))
            if hit is not None and len(hit.ids) == len(ctx):
                done[ctx] = hit
            else:
                todo.append((ctx, hit))
        todo.sort(key=lambda t: len(t[0]) - (len(t[1].ids) if t[1] else 0))
        start = 0
        while start < len(todo):
            end = start + 1
            while end < len(todo):  # the group grows while its rows x widest new part fits the budget
                width = len(todo[end][0]) - (len(todo[end][1].ids) if todo[end][1] else 0)
                if (end - start + 1) * width > self.prefill_tokens:
                    break
                end += 1
            for ctx, prefix in self._prefill_group(todo[start:end]):
                done[ctx] = prefix
            start = end
        return done

    def _prefill_group(self, group):
        width = max(len(ctx) - (len(hit.ids) if hit else 0) for ctx, hit in group)
        kept = [max(len(ctx) - width, 0) for ctx, _ in group]      # tokens each row takes from its prefix
        past = max(kept)
        kv = self._buffer(len(group), past + width)
        ids = torch.full((len(group), width), self.pad_id, dtype=torch.long)
        real = torch.zeros(len(group), past + width, dtype=torch.bool)
        positions = torch.zeros(len(group), width, dtype=torch.long)
        for r, ((ctx, hit), k) in enumerate(zip(group, kept)):
            if k:
                kv[:, :, r, :, past - k:past] = hit.kv[:, :, :, :k]
            new = list(ctx[k:])
            ids[r, width - len(new):] = torch.tensor(new, dtype=torch.long)
            real[r, past - k:] = True
            real[r, past:past + width - len(new)] = False
            positions[r, width - len(new):] = torch.arange(k, k + len(new))
        causal = torch.ones(width, past + width, dtype=torch.bool).tril(past)
        mask = causal & real[:, None, :]
        mask[:, torch.arange(width), past + torch.arange(width)] = True  # a padding query sees itself: never NaN
        if width:
            self._forward(kv, past, ids.to(self._device), positions.to(self._device), mask[:, None].to(self._device))
        for r, ((ctx, _), k) in enumerate(zip(group, kept)):
            begin = past + width - (len(ctx) - k) - k
            yield ctx, _Prefix(list(ctx), kv[:, :, r, :, begin:past + width].clone())

    def _decode(self, rows, prefixes: list[_Prefix], temperature, top_p, stop, store) -> list[Completion]:
        """Decode `rows` (prompt index, prompt, limit) together from their contexts' keys and
        values; each finished row's keys and values go to `store` for the next call."""
        count, past = len(rows), max(len(p.ids) for p in prefixes)
        steps = max(limit for _, _, limit in rows)
        kv = self._buffer(count, past + steps)
        real = torch.zeros(count, past + steps, dtype=torch.bool)
        for r, p in enumerate(prefixes):
            kv[:, :, r, :, past - len(p.ids):past] = p.kv
            real[r, past - len(p.ids):past] = True
        live = list(range(count))                # row index of each buffer row
        tokens = torch.tensor([p[-1] for _, p, _ in rows], dtype=torch.long)
        new: list[list[int]] = [[] for _ in rows]
        logps: list[list[float]] = [[] for _ in rows]
        tails, finish = [""] * count, [""] * count
        pieces, keep = self._token_texts(), max((len(s) for s in stop), default=0) + 16
        warpers = _warpers(temperature, top_p)
        for step in range(steps):
            at = past + step
            positions = torch.tensor([[len(prefixes[r].ids) + step] for r in live], dtype=torch.long)
            alive = torch.tensor([not finish[r] for r in live], dtype=torch.bool)
            real[:, at] = alive
            mask = real[:, None, None, :at + 1].to(self._device)
            logits = self._forward(kv, at, tokens[:, None].to(self._device), positions.to(self._device), mask)
            picked, logp = _sample(logits, warpers)
            picked, logp = picked.tolist(), logp.tolist()
            for b, r in enumerate(live):
                if finish[r]:
                    continue
                tok = picked[b]
                new[r].append(tok)
                logps[r].append(logp[b])
                tails[r] = (tails[r] + pieces[tok])[-keep:]
                if tok == self.eos_id or any(s in tails[r] for s in stop):
                    finish[r] = "stop"
                elif len(new[r]) >= rows[r][2]:
                    finish[r] = "length"
            tokens = torch.tensor(picked, dtype=torch.long)
            done = [b for b, r in enumerate(live) if finish[r]]
            if len(done) == len(live) or len(done) >= max(1, len(live) // 4):
                for b in done:  # the row's context, its last prompt token and all but its last new token
                    r = live[b]
                    begin, end = past - len(prefixes[r].ids), past + len(new[r])
                    if sum(p.kv.nbytes for p in store) + kv[:, :, b, :, begin:end].nbytes <= self.store_bytes:
                        store.append(_Prefix(rows[r][1] + new[r][:-1], kv[:, :, b, :, begin:end].clone()))
                keep_rows = [b for b, r in enumerate(live) if not finish[r]]
                if not keep_rows:
                    break
                index = torch.tensor(keep_rows, dtype=torch.long)
                kv, real, tokens = kv[:, :, index.to(self._device)], real[index], tokens[index]
                live = [live[b] for b in keep_rows]
        return [Completion(ids, lp, self.tokenizer.decode(ids, skip_special_tokens=False), f)
                for ids, lp, f in zip(new, logps, finish)]

    def _token_texts(self) -> list[str]:
        """Each token id's text, decoded once: what the stop check reads."""
        if self._pieces is None:
            extra = self.model.config.get_text_config(decoder=True).vocab_size - len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))], skip_special_tokens=False)
            self._pieces = texts + [""] * max(extra, 0)  # a model's padded rows beyond the tokenizer: no text
        return self._pieces


DECODE_ATTENTION = "minisearch_decode"


def decode_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """Attention for one new token a row (else transformers' SDPA), as two matmuls on the key/value
    heads: query (rows, heads, 1, dim) against key and value (rows, kv heads, length, dim) under a
    boolean mask (rows, 1, 1, length). On the CPU, SDPA with a mask takes ~1.8x as long at these
    shapes; a sampling copy of the model uses this (`use_decode_attention`)."""
    if query.shape[2] != 1 or attention_mask is None or attention_mask.dtype != torch.bool:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    rows, heads, _, dim = query.shape
    groups = key.shape[1]
    q = query.reshape(rows, groups, heads // groups, dim)                      # (rows, kv heads, per kv head, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)).mul_(scaling if scaling is not None else dim ** -0.5)
    scores.masked_fill_(~attention_mask, float("-inf"))                        # mask (rows, 1, 1, length)
    out = torch.matmul(torch.softmax(scores, -1), value)                       # (rows, kv heads, per kv head, dim)
    return out.reshape(rows, 1, heads, dim), None


AttentionInterface.register(DECODE_ATTENTION, decode_attention)


def use_decode_attention(model):
    """Make `model` (a sampling copy, never the model being trained) attend with `decode_attention`."""
    model.config._attn_implementation = DECODE_ATTENTION
    return model


def weights_version(model) -> tuple[int, ...]:
    """Changes whenever a trainable weight of `model` is modified in place (an optimiser step):
    torch counts every in-place write to a tensor."""
    return tuple(p._version for p in model.parameters() if p.requires_grad)


def _warpers(temperature: float, top_p: float) -> list | None:
    """transformers' own logits warpers, as `generate` applies them; None: greedy."""
    if temperature <= 0:
        return None
    warpers = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    return warpers + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])


def _sample(logits: torch.Tensor, warpers: list | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows,) sampled ids and their log-probabilities under the distribution sampled from."""
    if warpers is None:
        picked = logits.argmax(-1)
    else:
        for w in warpers:
            logits = w(None, logits)
        cdf = torch.softmax(logits, -1, dtype=torch.float64).cumsum(-1)      # inverse-CDF sampling: exact, and
        u = torch.rand(cdf.shape[0], 1, dtype=torch.float64) * cdf[:, -1:]   # ~20x faster than multinomial at 49k
        picked = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[1] - 1).squeeze(-1)
    logp = torch.log_softmax(logits, -1).gather(-1, picked[:, None]).squeeze(-1)
    return picked, logp
