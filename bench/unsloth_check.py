"""The gpu backend's training path on a lent GPU without vLLM (its wheel is far over what can
travel to one): Unsloth's 4-bit load and LoRA at Qwen2.5-1.5B's shapes, one SFT step and one
DAPO update sampled with HF `generate`, all through minisearch's own code.

    python bench/unsloth_check.py [--save FILE]     # bench/gpu_check.sh runs it when Unsloth imports
    python bench/unsloth_check.py --cpu-smoke       # this script's own code on a CPU: 2 small layers, peft

The lent machine reaches no model hub: the model is a random Qwen2 at Qwen2.5-1.5B's shapes
(28 layers, hidden 1536, vocabulary 151,936, tied output layer) saved in bf16 to a scratch
folder with a tokenizer trained on the toy world. Unsloth loads it in 4-bit
(`fast_inference=False`: no vLLM) and adds the recipes' rank-16 LoRA with its gradient
checkpointing. The backend is `GpuBackend`'s training half (hidden states through Unsloth's
switch, the chunked scoring, `scoring_mode`) with `CpuBackend`'s HF sampling in place of vLLM.

Reported, as one JSON object: seconds and peak CUDA memory (max_memory_allocated) of the load,
one SFT step (`sft.batch_backward`, 4 x 4 sequences of 2,048 tokens, as recipes/qwen1.5b.yaml)
and one DAPO update (`dapo.collect` on toy-world RAMP tasks, 8 groups of 4, up to 128 new
tokens a turn, then `dapo.update`), and the update's `ratio_error`: pi_theta / pi_old before
the first step, which must read ~1 under Unsloth's train-mode attention path too (bf16: expect
~1e-2, not ~1e-6 as in float32 on the CPU).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memory import LAYERS, QWEN, RANK, run_sft  # noqa: E402

SFT = {"accum": 4, "seqs": 4, "length": 2048, "micro": 8192}  # recipes/qwen1.5b.yaml's sft: batch 4 x accum 4


def random_model(folder: Path, layers: int, small: bool, device: str) -> Path:
    """A random Qwen2 (QWEN's shapes, or small ones for the smoke run) with a toy-world tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from minisearch.agent.protocol import TAGS
    from minisearch.data.toyworld import build_world
    from minisearch.tiny.model import IM_END, train_tokenizer

    tokenizer = train_tokenizer([p["contents"] for p in build_world(200, seed=0).passages], 2000, TAGS)
    shapes = dict(QWEN, hidden_size=64, intermediate_size=128, num_attention_heads=4) if small else QWEN
    config = Qwen2Config(**shapes, num_hidden_layers=layers, max_position_embeddings=32768,
                         eos_token_id=tokenizer.convert_tokens_to_ids(IM_END), pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def unsloth_backend(folder: Path):
    """Unsloth 4-bit + LoRA without vLLM, as a gpu backend that samples with HF generate."""
    from unsloth import FastLanguageModel  # first: Unsloth patches transformers on import

    from minisearch.agent.backends.cpu import LORA_TARGETS, CpuBackend
    from minisearch.agent.backends.gpu import GpuBackend

    class UnslothHf(GpuBackend):
        generate = CpuBackend.generate            # HF sampling, the cpu backend's code
        _generate_batch = CpuBackend._generate_batch
        _completion = CpuBackend._completion
        eos_id = CpuBackend.eos_id

        def __init__(self):  # what GpuBackend.__init__ does, minus the engine
            base, self.tokenizer = FastLanguageModel.from_pretrained(
                model_name=str(folder), max_seq_length=4096, load_in_4bit=True, fast_inference=False)
            self.model = FastLanguageModel.get_peft_model(
                base, r=RANK, lora_alpha=2 * RANK, target_modules=LORA_TARGETS,
                use_gradient_checkpointing="unsloth", random_state=0)
            self.tokenizer.padding_side = "left"
            self.device, self.bare, self.sampler = "cuda", False, None

        def sync_lora(self):  # HF samples the live model
            pass

    return UnslothHf()


def dapo_update(backend, scratch: Path) -> dict:
    """One DAPO step as the stage takes it: HF-sampled groups on toy-world RAMP tasks (rewards
    drawn at random, so groups differ), then the update."""
    import torch

    from minisearch.agent.rollout import RolloutConfig
    from minisearch.data.toyworld import build_world
    from minisearch.ramp.tasks import make_task
    from minisearch.search import build_index, open_searcher
    from minisearch.train.curriculum import Curriculum
    from minisearch.train.dapo import DapoConfig, collect
    from minisearch.train.dapo_update import update

    world, rng = build_world(200, seed=0), random.Random(0)
    build_index(world.passages, scratch / "index")
    tasks = [t for t in (make_task(p, 1 + i % 2, rng)[0] for i, p in enumerate(world.passages[:80])) if t]
    cfg = DapoConfig("tasks", "index", "model", "out", batch_tasks=8, group=4, updates=2, max_gen_rounds=2,
                     rollout=RolloutConfig(max_turns=1, max_new_tokens=128, max_total_tokens=4096, temperature=1.0))
    curriculum = Curriculum.from_tasks(tasks, "staged", promote_steps=10, promote_reward=0.0)
    coin = random.Random(1)

    def reward(task, traj):
        r = float(coin.random() < 0.5)
        return {"reward": r, "format": 0.0, "answer": r}

    params = [p for p in backend.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    start = time.time()
    with open_searcher(scratch / "index") as searcher:
        kept, every, generated = collect(backend, searcher, curriculum, rng, cfg, reward_fn=reward)
    sampled = time.time() - start
    stats = update(backend, kept, cfg, optimizer) if kept else {}
    tokens = sum(len(s.traj.ids) for s in every)
    return {"kept_groups": len(kept), "generated_groups": generated, "sample_seconds": round(sampled, 1),
            "update_seconds": round(time.time() - start - sampled, 1), "tokens": tokens, **stats}


def phase(name: str, fn, out: dict, device: str):
    """Run fn(), recording its seconds and, on CUDA, its peak allocated GiB."""
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    result = fn()
    out[name] = {"seconds": round(time.time() - start, 1)}
    if device == "cuda":
        out[name]["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(f"{name}: {json.dumps(out[name])}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", help="write the JSON here too")
    parser.add_argument("--cpu-smoke", action="store_true", help="this script's code on a CPU: small, peft")
    args = parser.parse_args()
    import torch

    device = "cpu" if args.cpu_smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device (the smoke run of this script: --cpu-smoke)")
    out: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="unsloth-check-") as tmp:
        scratch = Path(tmp)
        folder = phase("random_model", lambda: random_model(scratch / "model", 2 if args.cpu_smoke else LAYERS,
                                                            args.cpu_smoke, device), out, device)
        if args.cpu_smoke:
            from minisearch.agent.backends.cpu import CpuBackend

            backend = phase("load", lambda: CpuBackend(folder, lora_rank=RANK, train_embeddings=False), out, device)
            sft = {**SFT, "length": 256}
        else:
            backend = phase("load", lambda: unsloth_backend(folder), out, device)
            import unsloth

            out["unsloth"] = unsloth.__version__
            sft = SFT
        optimizer = torch.optim.AdamW([p for p in backend.model.parameters() if p.requires_grad], lr=1e-6)
        phase("sft_step", lambda: run_sft(backend, sft, optimizer), out, device)
        out["sft_step"].update(tokens=sft["accum"] * sft["seqs"] * sft["length"])
        out["dapo_update"] = {**phase("dapo_update", lambda: dapo_update(backend, scratch), out, device),
                              **out["dapo_update"]}
    print(json.dumps(out, indent=2))
    if args.save:
        Path(args.save).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
