"""The tiny model's language-model warm-up: next-token training of ALL weights on the corpus.

    minisearch warmup --model runs/demo/init --corpus runs/demo/corpus --out runs/demo/warmup

The tiny CPU model starts from random weights, so before RAMP and SFT (which train LoRA
adapters, as on a GPU) it reads the corpus once or a few times. This step exists only for
models built by `minisearch init`; a pretrained model (Qwen2.5 on a GPU) skips it.

    loss = mean over tokens t of -log p(x_t | x_<t), on blocks of `seq_len` tokens cut from
    the concatenated passages (each passage ends with the end-of-text token).

A share of the blocks (`copy_share`) are copy exercises, text that can be predicted only by
copying: half of them random corpus tokens repeating with a random period (6-40 tokens),
half corpus blocks with six of their own spans (4-24 tokens) written again further on. A
model built by `minisearch init` has a planted induction circuit (`minisearch.tiny.copyhead`)
whose weights the warm-up keeps fixed; the exercises teach the rest of the model to trust it
(measured with `bench/induction.py`, which shows what this buys). Each step's loss and
learning rate go to `metrics.jsonl` and the run's trackers (`minisearch.steplog`).
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.data.corpus import iter_passages
from minisearch.errors import UserError
from minisearch.records import TINY_INFO, tiny_model_info
from minisearch.rundir import stage_folder
from minisearch.settings import Settings, setting
from minisearch.steplog import StepLog
from minisearch.tiny.copyhead import freeze


@dataclass
class WarmupConfig(Settings):
    model: str = setting(help="The model folder from `minisearch init`.", path=True)
    corpus: str = setting(help="Text to read (any corpus source).", path=True)
    out: str = setting(help="Folder for the warmed-up model.")
    steps: int = setting(600, help="Optimiser steps (fewer left the SFT agent unable to copy a title: "
                                   "docs/log.md).", min=1)
    batch_size: int = setting(16, help="Blocks per step.", min=1)
    seq_len: int = setting(128, help="Tokens per block.", min=8)
    lr: float = setting(3e-3, help="Peak learning rate (cosine after the warm-up steps).")
    warmup_steps: int = setting(20, help="Linear learning-rate warm-up.", min=0)
    copy_share: float = setting(0.5, help="Share of blocks that are copy exercises (0: plain text).", min=0.0)
    seed: int = setting(0, help="Seed of the data order.")
    log_every: int = setting(1, help="A log line every this many steps.", min=1)


def token_stream(tokenizer, passages) -> list[int]:
    """The passages' tokens end to end, each passage closed by the end-of-text token."""
    stream: list[int] = []
    for p in passages:
        stream += tokenizer(p["contents"], add_special_tokens=False)["input_ids"] + [tokenizer.pad_token_id]
    return stream


def blocks(stream: list[int], seq_len: int) -> list[list[int]]:
    """The stream as consecutive blocks of seq_len + 1 tokens (inputs and shifted targets)."""
    n = (len(stream) - 1) // seq_len
    return [stream[i * seq_len:(i + 1) * seq_len + 1] for i in range(n)]


def copy_exercise(block: list[int], rng: random.Random, tokens: list[int]) -> list[int]:
    """A block as long as `block` that only copying predicts: random draws from `tokens`
    repeating with a random period, or `block` with six of its spans written again later."""
    size = len(block)
    if rng.random() < 0.5 or size < 50:
        period = [rng.choice(tokens) for _ in range(rng.randint(6, min(40, max(6, size // 2))))]
        return (period * (size // len(period) + 1))[:size]
    out = list(block)
    for _ in range(6):
        n = rng.randint(4, 24)
        at = rng.randrange(0, size - 2 * n)
        to = rng.randrange(at + n, size - n + 1)
        out = (out[:to] + out[at:at + n] + out[to:])[:size]
    return out


def batch_rows(data: list[list[int]], rng: random.Random, batch_size: int, copy_share: float,
               tokens: list[int]) -> list[list[int]]:
    """batch_size blocks drawn from data, each a copy exercise with probability copy_share."""
    return [copy_exercise(b, rng, tokens) if copy_share and rng.random() < copy_share else b
            for b in rng.sample(data, batch_size)]


def run(cfg: WarmupConfig, echo=print) -> Path:
    import torch
    from tqdm import tqdm

    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.backends.scoring import body_states, output_logits, score_hidden

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    with ExitStack() as owned:  # the model is freed however the stage ends
        backend = owned.enter_context(CpuBackend(cfg.model))  # no LoRA: the warm-up trains every weight
        tokenizer, model = backend.tokenizer, backend.model
        stream = token_stream(tokenizer, iter_passages(cfg.corpus))
        data = blocks(stream, cfg.seq_len)
        info = tiny_model_info(cfg.model)
        if info.get("copy_head"):
            freeze(model)  # the planted induction circuit stays as built
        if len(data) < cfg.batch_size:
            raise UserError(f"{cfg.corpus} is too small for a warm-up: {len(data)} blocks of {cfg.seq_len} tokens")
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)

        def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 10%
            if step < cfg.warmup_steps:
                return (step + 1) / cfg.warmup_steps
            done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        def head(h):
            return output_logits(model, h)

        tmp, counts = owned.enter_context(stage_folder(cfg.out, asdict(cfg)))
        log = owned.enter_context(StepLog(cfg.out, tmp, config=asdict(cfg)))
        model.train()
        history, start = [], time.time()
        for step in tqdm(range(cfg.steps), desc="warm-up", unit=" steps", mininterval=2.0):
            batch = torch.tensor(batch_rows(data, rng, cfg.batch_size, cfg.copy_share, stream))  # (B, seq_len + 1)
            hidden = body_states(model, batch[:, :-1])                 # (B, seq_len, H)
            logp, _, _ = score_hidden(head, hidden.flatten(0, 1), batch[:, 1:].flatten(), grad=True)
            loss = -logp.mean()                                        # cross-entropy, the output layer in chunks
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            history.append({"step": step + 1, "loss": round(loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                            "seconds": round(time.time() - start, 2)})
            log.row(history[-1])
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                echo(f"warm-up step {step + 1}/{cfg.steps} loss {loss.item():.3f} "
                     f"lr {scheduler.get_last_lr()[0]:.2e} {time.time() - start:.0f}s")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if info:  # the warmed-up model is still one `minisearch init` built
            (tmp / TINY_INFO).write_text(json.dumps(info, indent=2) + "\n")
        first, last = history[0]["loss"], sum(h["loss"] for h in history[-10:]) / min(10, len(history))
        counts.update(steps=cfg.steps, blocks=len(data), first_loss=first, final_loss=round(last, 4))
    echo(f"warm-up: loss {first:.3f} -> {last:.3f} over {cfg.steps} steps; model in {cfg.out}")
    return Path(cfg.out)
