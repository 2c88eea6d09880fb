"""The tiny CPU model: a byte-level BPE tokenizer trained on the corpus and a small,
randomly initialised Qwen2, saved like any Hugging Face model (the init stage, `tiny/init.py`,
writes one as a stage folder).

    init_model(passages, "models/tiny", TAGS)     # or: minisearch init --corpus CORPUS --out DIR

No weights can be downloaded in tests or on a laptop without internet, so the CPU path
builds its own model. It knows nothing at first: its recipe starts with a short
language-model warm-up on the corpus text (all weights), and later stages train LoRA
adapters on it exactly as on a GPU. ChatML turns (`<|im_start|>role ... <|im_end|>`) and
the protocol tags are single tokens, so a tag is never split across token boundaries.
Defaults: 4,096 tokens, 4 layers of width 128, ~1.3M parameters, and a planted induction
circuit (`minisearch.tiny.copyhead`): a model this small never learns to copy by content on CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.errors import UserError
from minisearch.records import TINY_INFO
from minisearch.settings import Settings, setting
from minisearch.tiny.copyhead import plant

EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class TinyModelConfig(Settings):
    vocab_size: int = setting(4096, help="Tokenizer vocabulary size (it holds the 256 bytes and the special "
                                         "tokens).", min=300)
    hidden_size: int = setting(128, help="Width of the model.")
    intermediate_size: int = setting(384, help="Width of the MLP.")
    layers: int = setting(4, help="Decoder layers.", min=1)
    heads: int = setting(4, help="Attention heads.")
    kv_heads: int = setting(2, help="Key/value heads (grouped-query attention).")
    max_positions: int = setting(2048, help="Longest sequence.")
    rope_theta: float = setting(1e10, help="RoPE base: slow pairs keep the copy head's match intact over distance "
                                           "(Qwen2.5: 1e6).")
    copy_head: bool = setting(True, help="Plant an induction circuit (minisearch.tiny.copyhead); the warm-up keeps "
                                         "it fixed.")
    seed: int = setting(0, help="Seed of the random weights.")


def train_tokenizer(texts: Iterable[str], vocab_size: int, tags: list[str]):
    """A byte-level BPE over `texts`; ChatML markers are special tokens, `tags` single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=EOS, bos_token=None,
                                   unk_token=None, additional_special_tokens=[IM_START])
    fast.add_tokens(list(tags))
    fast.chat_template = CHAT_TEMPLATE
    return fast


def init_model(passages: Iterable[dict], out: str | Path, tags: list[str],
               cfg: TinyModelConfig | None = None, extra_texts: Iterable[str] = ()) -> Path:
    """Train the tokenizer on the passages' text (plus `extra_texts`, e.g. the prompts, so
    their words are whole tokens too), build the random Qwen2, save both to `out`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyModelConfig()
    texts = [p["contents"] for p in passages]
    if not texts:
        raise UserError("no passages to train the tokenizer on; build a corpus first (minisearch corpus)")
    tokenizer = train_tokenizer([*texts, *extra_texts], cfg.vocab_size, tags)
    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None)
    model = Qwen2ForCausalLM(config)
    if cfg.copy_head:
        plant(model, cfg.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    (out / TINY_INFO).write_text(json.dumps({**asdict(cfg), "parameters": params,
                                                     "passages": len(texts), "tags": tags}, indent=2) + "\n")
    return out
