"""The CPU profile's rates for the tiny model, measured by minisearch's own stages on a small toy world.

    python bench/throughput.py                 # ~5 minutes on 2 cores; prints the rates and a YAML line
    python bench/throughput.py --json out.json

`minisearch run RECIPE --plan --hardware cpu` turns these into stage times
(minisearch/pipeline/hardware.yaml, profile `cpu`, key `tiny`). Measured on a world of 400
entities, not the demo's 2,000, so that the demo's own stage times check the plan
(`tests/test_plan.py`) instead of having set it:

- warmup_tokens_s: the warm-up stage (all weights) for `--steps` steps of 16 x 128 tokens;
- train_tokens_s: the sft stage (LoRA + embeddings, no gradient checkpointing: the demo's
  stages turn it off) on scripted RAMP trajectories, tokens of
  the examples trained over the stage's seconds;
- prefill_tokens_s, generate_tokens_s: the cpu backend's batched `generate` on 32 RAMP
  prompts, 1 new token (prompt reading) against 33 (the difference is decoding);
- whoosh: ms a query at two corpus sizes, batched, no cache (base and per-million).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn):
    start = time.time()
    out = fn()
    return out, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    from minisearch.agent.backends.cpu import CpuBackend
    from minisearch.agent.protocol import TAGS
    from minisearch.agent.rollout import prompt_ids
    from minisearch.data.toyworld import build_world
    from minisearch.jsonl import read_jsonl, write_jsonl
    from minisearch.ramp.tasks import RampConfig
    from minisearch.ramp.tasks import run as ramp
    from minisearch.search import build_index, open_searcher
    from minisearch.tiny.model import TinyModelConfig, init_model
    from minisearch.tiny.warmup import WarmupConfig
    from minisearch.tiny.warmup import run as warmup
    from minisearch.train.sft import SftConfig, examples
    from minisearch.train.sft import run as sft
    from minisearch.train.teachers import TeachConfig
    from minisearch.train.traj import TrajConfig
    from minisearch.train.traj import run as traj

    quiet = lambda *_: None  # noqa: E731
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = build_world(400, seed=1)
        write_jsonl(tmp / "passages.jsonl", world.passages)
        build_index(world.passages, tmp / "index")
        init_model(world.passages, tmp / "init", TAGS, TinyModelConfig())
        cfg = WarmupConfig(model=str(tmp / "init"), corpus=str(tmp / "passages.jsonl"), out=str(tmp / "model"),
                           steps=args.steps)
        _, s = timed(lambda: warmup(cfg, echo=quiet))
        rates["warmup_tokens_s"] = args.steps * cfg.batch_size * cfg.seq_len / s
        ramp(RampConfig(corpus=str(tmp / "passages.jsonl"), out=str(tmp / "ramp"), index=str(tmp / "index"),
                        recover="title", recover_k=1, per_passage=3), echo=quiet)
        traj(TrajConfig(tasks=str(tmp / "ramp" / "train.jsonl"), index=str(tmp / "index"), out=str(tmp / "traj"),
                        model=str(tmp / "model"), teach=TeachConfig(answer_form="spans", topk=1)), echo=quiet)
        rows = list(read_jsonl(tmp / "traj" / "round-0.jsonl"))
        scfg = SftConfig(data=str(tmp / "traj"), model=str(tmp / "model"), out=str(tmp / "sft"), lr=2e-3,
                         max_steps=args.steps, grad_checkpoint=False)
        _, s = timed(lambda: sft(scfg, echo=quiet))
        backend = CpuBackend(tmp / "model")
        mean = sum(len(r["input_ids"]) for r in examples(backend.tokenizer, rows, 2048)[0]) / len(rows)
        rates["train_tokens_s"] = args.steps * scfg.batch_size * mean / s
        tasks = list(read_jsonl(tmp / "ramp" / "train.jsonl"))[:32]
        prompts = [prompt_ids(backend.tokenizer, t, 4)[0] for t in tasks]
        backend.generate(prompts[:4], max_new_tokens=4)  # warm
        _, one = timed(lambda: backend.generate(prompts, max_new_tokens=1, temperature=1.0))
        _, many = timed(lambda: backend.generate(prompts, max_new_tokens=33, temperature=1.0))
        rates["prefill_tokens_s"] = sum(map(len, prompts)) / one
        rates["generate_tokens_s"] = 32 * 32 / max(1e-6, many - one)
        ms = {}
        queries = [p["contents"].split("\n")[0] + " born" for p in world.passages[:200]]
        for size in (400, 4000):
            big = build_world(size, seed=2)
            build_index(big.passages, tmp / f"idx{size}")
            with open_searcher(tmp / f"idx{size}", cache_size=0) as searcher:
                _, s = timed(lambda: searcher.search(queries, k=3))
            ms[size] = 1000 * s / len(queries)
        per_million = (ms[4000] - ms[400]) / (3600 / 1e6)
        rates["whoosh"] = {"base_ms": round(max(0.0, ms[400] - per_million * 400 / 1e6), 2),
                           "per_million_ms": round(per_million)}
    for key, value in rates.items():
        print(f"{key:>18}: {value if isinstance(value, dict) else round(value)}")
    tiny = {k: round(v) for k, v in rates.items() if k.endswith("_s")}
    print("hardware.yaml, profile cpu:  tiny: " + json.dumps({**tiny, "load_s": 1}).replace('"', ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rates, indent=2) + "\n")


if __name__ == "__main__":
    main()
