"""Peak memory of one DAPO update and one SFT step at Qwen2.5-1.5B's real shapes, scoring from
hidden states with the output layer in chunks (`minisearch/agent/backends/scoring.py`).

    python bench/memory.py                 # CPU: 1 and 3 layers measured, scaled to 28 (~14 min, 2 cores)
    python bench/memory.py --json          # the same, one JSON object
    python bench/memory.py --device cuda   # a GPU: 28 layers, the recipes' full sizes (bench/gpu_check.sh)
    python bench/memory.py --quick         # lengths and budgets / 8: a smoke run of the code, not numbers

The model is a random Qwen2 (hidden 1536, intermediate 8960, 12 heads / 2 kv, vocabulary
151,936, tied output layer) in bf16 with a rank-16 LoRA (alpha 32) on the seven linear layers
(`cpu.LORA_TARGETS`), cast to bf16 as Unsloth's kernels cast it to the activation dtype, and
gradient checkpointing on. Batches are synthetic: random ids, the last 50% of each sequence
model-written (scored), every sequence as long as the recipe lets a micro-batch be.

It runs the library as the stages do: `dapo.update` (the old pass micro-batched without
gradients, then gradient accumulation over micro-batches of `micro_tokens`) on the largest
micro-batch the budget admits, and `sft.batch_backward` on one batch of `batch_size`. The
micro-batches run one after another, so the peak is one micro-batch's whatever the batch:
`per_batch_growth` (peak at twice the sequences over peak at the batch) checks it. What the
code before chunked scoring needed is recorded in docs/memory.md (its "before" columns).

CPU: each case in a fresh process with `MALLOC_MMAP_THRESHOLD_` fixed (a freed tensor leaves
the resident set at once); peak = VmHWM (reset through /proc/self/clear_refs) minus the resident
set once the model, its LoRA gradients and AdamW states exist; at 1 and 3 layers, the difference
is one layer's cost, scaled to 28. GPU: max_memory_allocated minus memory_allocated at 28
layers, the base in 4-bit when bitsandbytes imports. The 4-bit weights and the LoRA's fp32
weights, gradients and AdamW states are arithmetic from the shapes (`arithmetic`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QWEN = dict(vocab_size=151_936, hidden_size=1536, intermediate_size=8960, num_attention_heads=12,
            num_key_value_heads=2, tie_word_embeddings=True)
LAYERS, RANK, PAD = 28, 16, 151_643      # Qwen2.5-1.5B's depth, the recipes' LoRA rank, <|endoftext|>
LOW, HIGH = 1, 3                         # the layer counts measured on the CPU
GIB = 2 ** 30
RECIPES = ["recipes/qwen1.5b.yaml", "recipes/qwen1.5b-12gb.yaml"]


# ---- the recipes and the arithmetic ----

def read_recipe(path: str, micro: int | None = None, quick: bool = False) -> dict:
    """The sizes a recipe's sft and dapo stages train at; the stages' defaults where it is silent."""
    import yaml

    from minisearch.agent.rollout import RolloutConfig
    from minisearch.train.dapo import DapoConfig
    from minisearch.train.sft import SftConfig

    stages = yaml.safe_load((ROOT / path).read_text())["stages"]
    dapo, sft = stages["dapo"], stages["sft"]
    card = re.search(r"(\d+)gb", Path(path).stem)
    r = {"path": path, "budget": int(card.group(1)) if card else 24,
         "tasks": dapo.get("batch_tasks", DapoConfig.batch_tasks), "group": dapo.get("group", DapoConfig.group),
         "updates": dapo.get("updates", DapoConfig.updates),
         "total": dapo.get("rollout", {}).get("max_total_tokens", RolloutConfig.max_total_tokens),
         "dapo_micro": micro or dapo.get("micro_tokens", DapoConfig.micro_tokens),
         "batch": sft.get("batch_size", SftConfig.batch_size), "accum": sft.get("grad_accum", SftConfig.grad_accum),
         "max_len": sft.get("max_len", SftConfig.max_len), "sft_micro": micro or sft.get("micro_tokens",
                                                                                         SftConfig.micro_tokens)}
    for key in ("total", "dapo_micro", "max_len", "sft_micro") if quick else ():
        r[key] //= 8
    return r


def packing(length: int, micro: int) -> tuple[int, int]:
    """(count, length) of the largest micro-batch `micro_batches` forms from sequences of at most
    `length` tokens: ceil(micro / length) sequences of micro // count tokens (3 x 2730 for 3072, 8192)."""
    if length >= micro:
        return 1, length
    count = -(-micro // length)
    return count, micro // count


def arithmetic(layers: int = LAYERS, rank: int = RANK) -> dict:
    """From the shapes: the 4-bit base (nf4, 0.5 byte a weight plus an fp32 absmax per 64-block,
    no double quantisation; embedding, norms and biases in 16-bit), the LoRA (fp32 weight, gradient
    and AdamW's two states: 16 bytes a parameter) and the KV cache a token and layer (bf16)."""
    h, i, v = QWEN["hidden_size"], QWEN["intermediate_size"], QWEN["vocab_size"]
    kv = QWEN["num_key_value_heads"] * h // QWEN["num_attention_heads"]
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]   # q k v o gate up down (in, out)
    linear = layers * sum(a * b for a, b in shapes)
    small = v * h + layers * (h + 2 * kv + 2 * h) + h                     # embedding, biases, norms
    lora = rank * sum(a + b for a, b in shapes)
    return {"linear_params": linear, "sixteen_bit_params": small, "lora_params": layers * lora,
            "lora_per_layer": lora, "weights_gib": (linear * (0.5 + 4 / 64) + small * 2) / GIB,
            "lora_opt_gib": layers * lora * 16 / GIB, "kv_bytes_per_token_layer": 2 * kv * 2}


# ---- the model and the meter (in the child process) ----

def build(layers: int, device: str, bits: int):
    """A random Qwen2 at QWEN's shapes with a LoRA, as a backend; the base in nf4 when bits == 4."""
    import contextlib

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from minisearch.agent.backends import Backend
    from minisearch.agent.backends.cpu import LORA_TARGETS

    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext
    torch.set_default_dtype(torch.bfloat16)
    with no_init_weights(), torch.device(device):
        lm = Qwen2ForCausalLM(Qwen2Config(**QWEN, num_hidden_layers=layers))
    torch.set_default_dtype(torch.float32)
    lm.lm_head.weight = lm.model.embed_tokens.weight
    block = torch.randn(1 << 22, generator=torch.Generator().manual_seed(0)).mul_(0.02).to(device, torch.bfloat16)
    with torch.no_grad():
        for name, p in lm.named_parameters():   # random values tiled from one draw: memory does not care
            flat = p.view(-1)
            for start in range(0, flat.numel(), block.numel()):
                flat[start:start + block.numel()].copy_(block[:flat.numel() - start])
            if "norm" in name:
                flat.fill_(1.0)
    if bits == 4:
        lm = quantized(lm)
    model = get_peft_model(lm, LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0,
                                          target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)

    class Bench(Backend):
        pad_id = PAD

        def __init__(self):
            self.model, self.device = model, device

    backend = Bench()
    backend.set_grad_checkpoint(True)
    return backend


def quantized(lm):
    """The same weights in nf4 through transformers' bitsandbytes loader (the route of Unsloth's 4-bit)."""
    import tempfile

    import torch
    from transformers import BitsAndBytesConfig, Qwen2ForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        lm.save_pretrained(tmp)
        del lm
        torch.cuda.empty_cache()
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        return Qwen2ForCausalLM.from_pretrained(tmp, quantization_config=quant, dtype=torch.bfloat16,
                                                device_map={"": 0})


def status(key: str) -> int:
    """Bytes of a /proc/self/status line (VmRSS:, VmHWM:)."""
    line = next(r for r in Path("/proc/self/status").read_text().splitlines() if r.startswith(key))
    return int(line.split()[1]) * 1024


def measured(device: str, work) -> dict:
    """Run `work()`; its peak bytes above what is resident (CPU) or allocated (CUDA) before it."""
    import gc

    import torch

    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")   # VmHWM := VmRSS
        except OSError as e:
            raise SystemExit(f"bench/memory.py needs Linux's /proc/self/clear_refs to reset the peak ({e})") from e
        base = status("VmRSS:")
    began = time.perf_counter()
    work()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() if cuda else status("VmHWM:")
    extra = {"reserved_gib": torch.cuda.max_memory_reserved() / GIB} if cuda else {}
    return {"peak_gib": (peak - base) / GIB, "base_gib": base / GIB, "seconds": seconds, **extra}


# ---- the cases: the library's code ----

def ids(n: int, length: int, seed: int) -> list[list[int]]:
    import torch

    return torch.randint(0, PAD, (n, length), generator=torch.Generator().manual_seed(seed)).tolist()


def run_dapo(backend, case: dict, optimizer) -> None:
    """`dapo.update` on case["seqs"] sequences in groups of case["group"], the last half model-written."""
    from minisearch.agent.rollout import Segment, Trajectory
    from minisearch.train.dapo import DapoConfig, Sample
    from minisearch.train.dapo_update import update

    half, g = case["length"] // 2, case["group"]
    trajs = [Trajectory(f"t{i // g}", i, [Segment("prompt", s[:half], ""), Segment("model", s[half:], "")])
             for i, s in enumerate(ids(case["seqs"], case["length"], 1))]
    samples = [Sample({}, t, {}, float(i % 2)) for i, t in enumerate(trajs)]
    cfg = DapoConfig("tasks", "index", "model", "out", micro_tokens=case["micro"], updates=case["updates"],
                     group=max(2, g))
    update(backend, [samples[i:i + g] for i in range(0, len(samples), g)], cfg, optimizer)


def run_sft(backend, case: dict, optimizer) -> None:
    """One optimiser step of `sft.batch_backward` over case["accum"] batches of case["seqs"] sequences."""
    import torch

    from minisearch.train.sft import batch_backward

    batches = []
    for a in range(case["accum"]):
        x = torch.tensor(ids(case["seqs"], case["length"], 2 + a), device=backend.device)
        labels = x.clone()
        labels[:, :case["length"] // 2] = -100
        batches.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": labels})
    total = float(sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches))
    backend.model.train()
    optimizer.zero_grad()
    for batch in batches:
        batch_backward(backend, batch, total, case["micro"])
    torch.nn.utils.clip_grad_norm_([p for p in backend.model.parameters() if p.requires_grad], 1.0)
    optimizer.step()


RUN = {"dapo": run_dapo, "sft": run_sft}


def child(spec: dict) -> list[dict]:
    """Build the model once, warm up, then measure each case (on the CPU one case a process)."""
    import torch

    from minisearch.agent.backends.scoring import logprobs, score

    torch.set_num_threads(spec["threads"])
    backend = build(spec["layers"], spec["device"], spec["bits"])
    params = [p for p in backend.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    warm = ids(2, 32, 0)   # gradients, AdamW states and lazy kernels exist before the baseline
    backend.model.train()
    sum(lp.sum() for lp in score(backend, warm, grad=True, entropy=True).logprobs).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    backend.model.eval()
    logprobs(backend, warm)
    return [{**case, **measured(spec["device"], lambda c=case: RUN[c["kind"]](backend, c, optimizer)),
             "lora_params": sum(p.numel() for p in params)} for case in spec["cases"]]


# ---- the plan, the runs, the tables ----

def plan(recipes: list[dict], direct: bool, layers: int) -> list[dict]:
    """The cases, each with its key. `direct` (the GPU): at `layers` and the recipes' full sizes;
    else at LOW and HIGH layers on the largest micro-batch, scaled to 28 by `summarise`."""
    cases, depths = [], [layers] if direct else [LOW, HIGH]
    for n, r in enumerate(recipes):
        count, length = packing(r["total"], r["dapo_micro"])
        dapo = dict(kind="dapo", length=length, micro=r["dapo_micro"])
        sft = dict(kind="sft", length=r["max_len"], micro=r["sft_micro"])
        for depth in depths:
            if direct:
                cases += [dict(dapo, key=f"{n}|dapo", layers=depth, seqs=r["tasks"] * r["group"], group=r["group"],
                               updates=r["updates"]),
                          dict(sft, key=f"{n}|sft", layers=depth, seqs=r["batch"], accum=r["accum"])]
            else:
                cases += [dict(dapo, key=f"{n}|dapo|L{depth}", layers=depth, seqs=count, group=count, updates=1),
                          dict(sft, key=f"{n}|sft|L{depth}", layers=depth, seqs=r["batch"], accum=1)]
        if n == 0:   # per_batch_growth on the first recipe: the batch, then twice the batch
            for times in (1, 2) if direct else (2,):   # scaled: the batch is the LOW-layer case above
                cases += [dict(dapo, key=f"grow|dapo|{times}", layers=depths[0], seqs=times * count, group=count,
                               updates=1),
                          dict(sft, key=f"grow|sft|{times}", layers=depths[0], seqs=times * r["batch"], accum=1)]
    return cases


def measure(cases: list[dict], device: str, bits: int, threads: int, direct: bool) -> dict:
    """Results by key; on the CPU a fresh process per case, on the GPU one process for all."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "TOKENIZERS_PARALLELISM": "false"}
    out = {}
    for batch in [cases] if direct else [[c] for c in cases]:
        spec = {"layers": batch[0]["layers"], "device": device, "bits": bits, "threads": threads, "cases": batch}
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, text=True,
                              stdout=subprocess.PIPE)
        if done.returncode != 0:
            raise SystemExit(f"bench/memory.py: the case {batch[0]['key']} failed (exit {done.returncode})")
        for row in json.loads(done.stdout.strip().splitlines()[-1]):
            out[row["key"]] = row
            print(f"  {row['key']:<16} {row['layers']:>2} layers +{row['peak_gib']:.3f} GiB {row['seconds']:.1f}s",
                  file=sys.stderr)
    if not direct:
        out.update({f"grow|{k}|1": out[f"0|{k}|L{LOW}"] for k in ("dapo", "sft")})
    return out


def summarise(recipes: list[dict], res: dict, direct: bool) -> dict:
    """Per recipe and stage: peak above the weights at 28 layers, and the total with the 4-bit
    weights and the LoRA + AdamW."""
    arith = arithmetic()
    wrong = [c["key"] for c in res.values() if c["lora_params"] != arith["lora_per_layer"] * c["layers"]]
    if wrong:
        raise SystemExit(f"bench/memory.py: the built LoRA's size disagrees with the arithmetic in {wrong}")
    base, out = arith["weights_gib"] + arith["lora_opt_gib"], {}
    for n, r in enumerate(recipes):
        count, length = packing(r["total"], r["dapo_micro"])
        row = {"recipe": r, "dapo_micro_batch": [count, length]}
        for kind in ("dapo", "sft"):
            if direct:
                case = res[f"{n}|{kind}"]
                peak, per_layer, seconds = case["peak_gib"], None, case["seconds"]
                seen = {"base_gib": case["base_gib"], "measured_total_gib": case["base_gib"] + peak,
                        "reserved_gib": case.get("reserved_gib")}
            else:
                lo, hi = res[f"{n}|{kind}|L{LOW}"], res[f"{n}|{kind}|L{HIGH}"]
                per_layer = (hi["peak_gib"] - lo["peak_gib"]) / (HIGH - LOW)
                peak, seconds, seen = lo["peak_gib"] + per_layer * (LAYERS - LOW), hi["seconds"], {}
            row[kind] = {"peak_gib": peak, "per_layer_gib": per_layer, "seconds": seconds, "total_gib": base + peak,
                         **seen}
        out[r["path"]] = row
    growth = {k: res[f"grow|{k}|2"]["peak_gib"] / res[f"grow|{k}|1"]["peak_gib"] for k in ("dapo", "sft")}
    return {"recipes": out, "growth": growth, "arithmetic": arith}


def machine(device: str, threads: int, bits: int) -> str:
    import torch

    if device.startswith("cuda"):
        where = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, base {bits}-bit"
    else:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((r.split(":", 1)[1].strip() for r in info.splitlines() if r.startswith("model name")), "?")
        bf16 = ", avx512_bf16" if "avx512_bf16" in info else ""
        where = f"{cpu}{bf16}, {threads} torch threads, {os.cpu_count()} cores"
    return f"{where}; torch {torch.__version__}, Python {platform.python_version()}"


def cells(label: str, values: list, fmt: str = "{:12.2f}") -> str:
    """One table row: DAPO, SFT (None: blank)."""
    return f"{label:<36}" + "".join(f"{'':>12}" if v is None else fmt.format(v) for v in values)


def columns(row: dict, key: str) -> list:
    return [row["dapo"][key], row["sft"][key]]


def tables(s: dict, direct: bool, layers: int) -> list[str]:
    a = s["arithmetic"]
    lines = [f"4-bit weights: {a['linear_params']:,} linear weights x (0.5 + 4/64) B + {a['sixteen_bit_params']:,} "
             f"16-bit (embedding/output, norms, biases) x 2 B = {a['weights_gib']:.2f} GiB",
             f"LoRA r={RANK}: {a['lora_params']:,} parameters ({a['lora_per_layer']:,} a layer) x 16 B "
             f"(fp32 weight, grad, 2 AdamW states) = {a['lora_opt_gib']:.2f} GiB", ""]
    for path, row in s["recipes"].items():
        r, d, k = row["recipe"], row["dapo"], row["dapo_micro_batch"]
        lines += [f"{path} ({r['budget']} GB card): DAPO {r['tasks']} tasks x {r['group']} = "
                  f"{r['tasks'] * r['group']} sequences of <= {r['total']} tokens, {r['updates']} updates, "
                  f"micro_tokens {r['dapo_micro']} (largest micro-batch {k[0]} x {k[1]}); SFT batch {r['batch']} x "
                  f"{r['max_len']}, grad_accum {r['accum']}, micro_tokens {r['sft_micro']}",
                  f"{'GiB':<36}{'DAPO update':>12}{'SFT step':>12}",
                  cells("4-bit weights (arithmetic)", [a["weights_gib"]] * 2),
                  cells("LoRA + grads + AdamW (arithmetic)", [a["lora_opt_gib"]] * 2),
                  cells(f"peak above weights, {layers if direct else LAYERS} layers", columns(row, "peak_gib")),
                  cells("total", columns(row, "total_gib")),
                  cells(f"fits {r['budget']} GB", ["yes" if t <= r["budget"] else "no"
                                                  for t in columns(row, "total_gib")], "{:>12}")]
        if direct:
            lines += [cells("  measured: allocated before the case", columns(row, "base_gib")),
                      cells("  measured: max allocated", columns(row, "measured_total_gib"))]
            if d.get("reserved_gib") is not None:
                lines.append(cells("  measured: max reserved", columns(row, "reserved_gib")))
            lines.append(cells("  seconds (the whole update / step)", columns(row, "seconds"), "{:12.1f}"))
        else:
            lines += [cells(f"  one layer ({LOW} vs {HIGH})", columns(row, "per_layer_gib"), "{:12.3f}"),
                      cells(f"  seconds (the {HIGH}-layer case)", columns(row, "seconds"), "{:12.1f}")]
        lines.append("")
    g = s["growth"]
    return lines + [f"per_batch_growth (peak at twice the batch / at the batch): DAPO {g['dapo']:.3f}, "
                    f"SFT {g['sft']:.3f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (scaled from 1 and 3 layers) or cuda (28 layers)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument("--save", type=Path, help="also write that JSON object to this file")
    ap.add_argument("--recipes", nargs="+", default=RECIPES, help="the first one gives the JSON's totals")
    ap.add_argument("--micro-tokens", type=int, help="override both stages' micro_tokens in every recipe")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="lengths and budgets / 8: tests the code, not the numbers")
    ap.add_argument("--direct", action="store_true", help="the GPU's plan (full sizes, one process) on any device")
    ap.add_argument("--layers", type=int, default=LAYERS, help="layers of the direct plan (28; fewer only to test)")
    ap.add_argument("--bits", type=int, choices=(4, 16), help="the base's precision (cuda: 4 if bitsandbytes imports)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    direct, bits = args.direct or args.device.startswith("cuda"), args.bits or 16
    if args.bits is None and args.device.startswith("cuda"):
        try:
            import bitsandbytes  # noqa: F401
            bits = 4
        except ImportError:
            print("bitsandbytes does not import: the base stays in bf16 (measured weights ~3 GiB; the 4-bit row "
                  "stays arithmetic)", file=sys.stderr)
    started = time.time()
    recipes = [read_recipe(p, args.micro_tokens, args.quick) for p in args.recipes]
    res = measure(plan(recipes, direct, args.layers), args.device, bits, args.threads, direct)
    s = summarise(recipes, res, direct)
    first = s["recipes"][recipes[0]["path"]]
    report = {"dapo_update_peak_gb": round(first["dapo"]["total_gib"], 3),
              "sft_step_peak_gb": round(first["sft"]["total_gib"], 3),
              "per_batch_growth": round(max(s["growth"].values()), 4),
              "per_batch_growth_by_stage": {k: round(v, 4) for k, v in s["growth"].items()},
              "machine": machine(args.device, args.threads, bits), "device": args.device, "base_bits": bits,
              "layers_measured": [args.layers] if direct else [LOW, HIGH], "quick": args.quick,
              "wall_seconds": round(time.time() - started, 1), **s, "cases": list(res.values())}
    if args.save:
        args.save.write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"bench/memory.py on {report['machine']} ({report['wall_seconds']:.0f} s"
          + (", --quick: NOT the numbers" if args.quick else "") + "); GiB = 2^30 bytes\n")
    print("\n".join(tables(s, direct, args.layers)))


if __name__ == "__main__":
    main()
