"""SFT step time on the CPU: the output layer on every position (the model's own loss) against
only the target positions, from hidden states in micro-batches (`minisearch.train.sft.batch_backward`,
what the trainer uses on both backends).

    python bench/sft_step.py --model runs/demo/warmup --traj runs/demo/traj/round-0.jsonl

Same batches, same LoRA (+ embeddings) and optimiser as `minisearch sft`; forward, backward
and AdamW step; the two ways alternate so load on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisearch.agent.backends.cpu import CpuBackend  # noqa: E402
from minisearch.jsonl import read_jsonl  # noqa: E402
from minisearch.train import sft  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--traj", required=True, help="A trajectories JSONL (a traj stage's round-0.jsonl).")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="Timed steps per way and round.")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import torch

    backend = CpuBackend(args.model, lora_rank=16)
    rows, _ = sft.examples(backend.tokenizer, list(read_jsonl(args.traj)), max_len=2048)
    collate = sft.collate(backend.tokenizer.pad_token_id)
    batches = [collate(rows[i:i + args.batch_size]) for i in range(0, args.steps * args.batch_size, args.batch_size)]
    opt = torch.optim.AdamW([p for p in backend.model.parameters() if p.requires_grad], lr=1e-5)
    def model_loss(batch, backward=True):
        loss = backend.model(**batch).loss
        if backward:
            loss.backward()
        return loss.item()

    def targets_only(batch, backward=True):
        total = float((batch["labels"][:, 1:] != -100).sum())
        return sft.batch_backward(backend, batch, total, sft.SftConfig.micro_tokens, backward)["loss"]

    ways = {"every position (model loss)": model_loss, "target positions only": targets_only}
    seconds = {name: [] for name in ways}
    with torch.no_grad():
        losses = {name: way(batches[0], backward=False) for name, way in ways.items()}
    for _ in range(args.rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            for batch in batches:
                opt.zero_grad()
                way(batch)
                opt.step()
            seconds[name].append((time.perf_counter() - start) / len(batches))
    base = min(seconds["every position (model loss)"])
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
    print(f"{len(batches)} batches of {args.batch_size} trajectories, {tokens:.0f} tokens a batch, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| loss on | s / step (best round) | speed-up | loss on batch 1 |\n|---|---|---|---|")
    for name in ways:
        best = min(seconds[name])
        print(f"| {name} | {best:.3f} | {base / best:.2f}x | {losses[name]:.6f} |")


if __name__ == "__main__":
    main()
