"""The tiny model's language-model warm-up: next-token training of ALL weights on the corpus.

    minisearch model warmup --model runs/demo/model --corpus runs/demo/corpus --out runs/demo/warm

The tiny CPU model starts from random weights, so before RAMP and SFT (which train LoRA
adapters, as on a GPU) it reads the corpus once or a few times. This step exists only for
models built by `minisearch model init`; a pretrained model (Qwen2.5 on a GPU) skips it.

    loss = mean over tokens t of -log p(x_t | x_<t), on blocks of `seq_len` tokens cut from
    the concatenated passages (each passage ends with the end-of-text token).

A share of the blocks (`copy_share`) are copy exercises: the first half of a block, then
that half again. A pretrained LLM can copy a name it has just read (induction heads); a
model trained from scratch on a few hundred thousand tokens cannot, and a search agent has
to copy: the title from the paragraph into its query, the span from the results into its
answer. On the toy corpus, next-token accuracy on the repeated half rose from 0.61 (no
copy blocks, 300 steps) to 0.75 (half copy blocks, 600 steps); without it the SFT'd tiny
agent writes the same invented name into every query. That copy is positional (the repeat
stands 64 tokens back in every exercise): `bench/induction.py` finds no copy by content at
other distances, so this warm-up does not yet give the model induction heads.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.corpus import iter_passages
from minisearch.errors import UserError
from minisearch.rundir import stage_folder


@dataclass
class WarmupConfig:
    model: str
    corpus: str
    out: str
    steps: int = 600  # with 300 the SFT agent never learned to copy a title into its query
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    warmup_steps: int = 20
    copy_share: float = 0.5  # share of blocks that are copy exercises (first half, then again)
    seed: int = 0
    log_every: int = 1  # a log line every this many steps


def blocks(tokenizer, passages, seq_len: int) -> list[list[int]]:
    """The corpus as consecutive blocks of seq_len + 1 tokens (inputs and shifted targets)."""
    stream: list[int] = []
    for p in passages:
        stream += tokenizer(p["contents"], add_special_tokens=False)["input_ids"] + [tokenizer.pad_token_id]
    n = (len(stream) - 1) // seq_len
    return [stream[i * seq_len:(i + 1) * seq_len + 1] for i in range(n)]


def copy_block(block: list[int]) -> list[int]:
    """The block's first half, then that half again (same length as the block).

    >>> copy_block([1, 2, 3, 4, 5])
    [1, 2, 1, 2, 1]
    """
    half = len(block) // 2
    return ((block[:half] * 3)[:len(block)]) if half else list(block)


def batch_rows(data: list[list[int]], rng: random.Random, batch_size: int, copy_share: float) -> list[list[int]]:
    """batch_size blocks drawn from data, each a copy exercise with probability copy_share."""
    return [copy_block(b) if copy_share and rng.random() < copy_share else b for b in rng.sample(data, batch_size)]


def run(cfg: WarmupConfig, echo=print) -> Path:
    import torch
    from tqdm import tqdm

    from minisearch.backends.cpu import CpuBackend

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    backend = CpuBackend(cfg.model)  # no LoRA: the warm-up trains every weight
    tokenizer, model = backend.tokenizer, backend.model
    data = blocks(tokenizer, iter_passages(cfg.corpus), cfg.seq_len)
    if len(data) < cfg.batch_size:
        raise UserError(f"{cfg.corpus} is too small for a warm-up: {len(data)} blocks of {cfg.seq_len} tokens")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        model.train()
        history, start = [], time.time()
        for step in tqdm(range(cfg.steps), desc="warm-up", unit=" steps", mininterval=2.0):
            batch = torch.tensor(batch_rows(data, rng, cfg.batch_size, cfg.copy_share))  # (B, seq_len + 1)
            logits = model(input_ids=batch[:, :-1]).logits            # (B, seq_len, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            history.append({"step": step + 1, "loss": round(loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                            "seconds": round(time.time() - start, 2)})
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                echo(f"warm-up step {step + 1}/{cfg.steps} loss {loss.item():.3f} "
                     f"lr {scheduler.get_last_lr()[0]:.2e} {time.time() - start:.0f}s")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name in ("tiny_model.json",):
            if (Path(cfg.model) / name).is_file():
                (tmp / name).write_text((Path(cfg.model) / name).read_text())
        with (tmp / "metrics.jsonl").open("w") as f:
            f.writelines(json.dumps(h) + "\n" for h in history)
        first, last = history[0]["loss"], sum(h["loss"] for h in history[-10:]) / min(10, len(history))
        counts.update(steps=cfg.steps, blocks=len(data), first_loss=first, final_loss=round(last, 4))
    echo(f"warm-up: loss {first:.3f} -> {last:.3f} over {cfg.steps} steps; model in {cfg.out}")
    return Path(cfg.out)
