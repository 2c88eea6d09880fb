"""`minisearch export merged RUN --stage S --out DIR`: the base model with a stage's LoRA adapter
merged in, as a plain Hugging Face folder that the usual servers load (vLLM's OpenAI server,
TGI, llama.cpp's converters) and `AutoModelForCausalLM.from_pretrained(DIR)` answers with.

    minisearch export merged runs/demo --stage qa-sft --out agents/demo

The folder holds the merged weights (the base's dtype), the tokenizer with its chat template,
`generation_config.json` (greedy, as the eval scores the agent, stopping at the protocol's stop
strings `</search>` and `</answer>` and at the end-of-turn token) and the model card
(README.md, `minisearch.export.card`). The merge is peft's `merge_and_unload` on the CPU in
float32: W + (alpha / r) B A per LoRA layer, and the adapter's trained embedding rows (the tiny
model's) written into the embedding matrix, so the merged model computes what base + adapter
compute. The folder appears whole or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from minisearch.agent.protocol import STOP
from minisearch.errors import UserError
from minisearch.records import TINY_INFO


def merge(root: str | Path, stages, name: str, out: str | Path, hub: bool = False) -> Path:
    """Write the merged model of stage `name` of the run at `root` (its `stages`) to `out`,
    with its card; `hub`: the card for an upload (see `card.card_text`)."""
    from minisearch.export.card import adapter_stage, card_text

    root, out = Path(root), Path(out)
    stage = adapter_stage(stages, name, root)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; name a new folder with --out (or remove it)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_merged(stage.cfg.model, Path(stage.cfg.out) / "adapter", tmp)
    (tmp / "README.md").write_text(card_text(root, stages, name, merged=True, hub=hub), encoding="utf-8")
    if out.exists():
        out.rmdir()  # empty, checked above
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def write_merged(model: str | Path, adapter: str | Path, folder: str | Path) -> Path:
    """Base `model` with the LoRA `adapter` merged in, saved in the base's dtype with the
    tokenizer and the agent's generation_config in `folder`."""
    import torch
    from transformers import AutoConfig

    from minisearch.agent.backends.cpu import CpuBackend

    dtype = getattr(AutoConfig.from_pretrained(str(model)), "dtype", None) or torch.float32
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype  # the base's, e.g. bfloat16
    backend = CpuBackend(model, adapter=adapter)  # float32, the adapter checked against the base
    merged = backend.model.merge_and_unload().to(dtype)
    merged.save_pretrained(str(folder))
    backend.tokenizer.save_pretrained(str(folder))
    if (Path(model) / TINY_INFO).is_file():  # still the tiny model: its marker keeps it sampled as one (float32)
        shutil.copy(Path(model) / TINY_INFO, Path(folder) / TINY_INFO)
    generation_config(backend.tokenizer, merged.generation_config).save_pretrained(str(folder))
    backend.close()
    return Path(folder)


def generation_config(tokenizer, base):
    """The agent's generation defaults: greedy, a turn ends at a protocol stop string (HF
    `generate` reads `stop_strings` when given the tokenizer) or at the end-of-turn token."""
    from transformers import GenerationConfig

    config = GenerationConfig(**{k: v for k, v in base.to_diff_dict().items() if k != "transformers_version"})
    config.update(do_sample=False, temperature=None, top_p=None, top_k=None, stop_strings=list(STOP),
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return config
