"""The sft stage: LoRA training on accepted trajectories, loss only on model-written tokens.

    minisearch sft runs/demo/traj --model runs/demo/warm --out runs/demo/sft \\
        --eval-tasks runs/demo/ramp/dev.jsonl --index runs/demo/index

Each trajectory is tokenised segment by segment and rendered by `rollout.render`, the same
function RL uses; labels are the token ids where the mask is 1 and -100 elsewhere, so the
prompt and every `<information>` block are context, never targets:

    loss = - sum_{t: mask_t = 1} log p(x_t | x_<t) / #{t: mask_t = 1}

Training is transformers' `Trainer` (it honours -100 labels, and brings gradient
accumulation, length-grouped batches, checkpoints with optimiser and RNG state, and resume);
on the gpu backend the model is Unsloth's, which patches the same Trainer. One log line per
step (loss, token accuracy on the targets, learning rate) and `metrics.jsonl`. A killed run
keeps `sft.tmp/checkpoints/`; rerunning the same command resumes from the last one.
With `eval_tasks` and `index`, held-out accuracy is measured before and after training.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minisearch.agent.rollout import RolloutConfig, from_record, render
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.pipeline.rundir import stage_folder, trim_metrics


@dataclass
class SftConfig:
    data: str | list[str]           # a traj stage folder (its round-*.jsonl) or one JSONL of trajectories, or a list
    model: str
    out: str
    adapter: str | None = None      # continue from this adapter instead of a fresh one
    backend: str = "cpu"
    lora_rank: int = 16
    train_embeddings: bool | None = None  # None: the tiny model's fresh adapter trains them, a loaded one goes on
    lr: float = 2e-4
    epochs: float = 2.0
    max_steps: int = -1             # overrides epochs when > 0
    batch_size: int = 8
    grad_accum: int = 1
    max_len: int = 2048             # longer trajectories are skipped and counted
    warmup_ratio: float = 0.05
    save_steps: int = 50
    seed: int = 0
    eval_tasks: str | None = None   # held-out RAMP or QA tasks, scored before and after training
    index: str | None = None
    eval_limit: int = 64
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(temperature=0.0))


def trajectory_files(data: str | Path | list) -> list[Path]:
    """The JSONL files of one trajectory source (a traj folder's rounds, or a file), or of several."""
    if isinstance(data, list):
        return [f for d in data for f in trajectory_files(d)]
    path = Path(data)
    files = sorted(path.glob("round-*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"no trajectories at {data}: make them with `minisearch traj TASKS --index DIR --out DIR`")
    return files


def examples(tokenizer, records, max_len: int) -> tuple[list[dict], Counter]:
    """Training rows {input_ids, labels}: labels copy the ids on model-written tokens, -100 elsewhere."""
    rows, skipped = [], Counter()
    for record in records:
        ids, mask = render(from_record(tokenizer, record))
        if len(ids) > max_len:
            skipped["too_long"] += 1
        elif not any(mask):
            skipped["no_model_tokens"] += 1
        else:
            rows.append({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]})
    return rows, skipped


def collate(pad_id: int):
    def fn(rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        def pad(key, value):
            return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])
        ids, labels = pad("input_ids", pad_id), pad("labels", -100)
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}  # each (B, T)
    return fn


def target_loss(model, inputs: dict, num_items_in_batch=None):
    """The loss with the output layer applied only where a target is: the model's own tokens
    are ~6% of a toy trajectory, and the 4,096-wide output layer was a third of a CPU step
    (`python bench/sft_step.py`: 1.56x faster a step, the same loss). Returns (loss, target
    logits, targets)."""
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    targets = inputs["labels"][:, 1:]                       # (B, T-1)
    keep = targets != -100
    logits = inner.lm_head(hidden[:, :-1][keep])            # (N, V): only where a target is
    total = torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return total / n, logits, targets[keep]


def make_trainer(backend, rows: list[dict], cfg: SftConfig, folder: Path, echo):
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    class MaskedTrainer(Trainer):
        """Trainer that also measures token accuracy on the targets."""

        hits = total = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if cfg.backend != "cpu" or return_outputs:
                loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
                logits, targets = outputs.logits[:, :-1], inputs["labels"][:, 1:]   # (B, T-1, V), (B, T-1)
                keep = targets != -100
                logits, targets = logits[keep], targets[keep]
            else:
                loss, logits, targets = target_loss(model, inputs, num_items_in_batch)
            with torch.no_grad():
                self.hits += int((logits.argmax(-1) == targets).sum())
                self.total += int(targets.numel())
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, start_time=None):
            if "loss" in logs and self.total:
                logs["token_acc"] = round(self.hits / self.total, 4)
                self.hits = self.total = 0
            super().log(logs, start_time)

    class StepLines(ProgressCallback):
        """The progress bar, with one readable line per step instead of a dict."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            row = {"step": state.global_step, "loss": round(logs["loss"], 4), "token_acc": logs.get("token_acc"),
                   "lr": logs.get("learning_rate"), "seconds": round(time.time() - started, 1)}
            with (folder / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            line = (f"sft step {state.global_step}/{state.max_steps} loss {row['loss']:.3f} "
                    f"acc {row['token_acc']} lr {row['lr']:.2e} {row['seconds']:.0f}s")
            if self.training_bar is not None:
                self.training_bar.write(line)
            else:
                echo(line)

    started = time.time()
    args = TrainingArguments(
        output_dir=str(folder / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=2, seed=cfg.seed, data_seed=cfg.seed,
        report_to="none", use_cpu=cfg.backend == "cpu", remove_unused_columns=False,
        train_sampling_strategy="group_by_length", dataloader_num_workers=0, disable_tqdm=False)
    trainer = MaskedTrainer(model=backend.model, args=args, train_dataset=rows,
                            data_collator=collate(backend.tokenizer.pad_token_id))
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(StepLines())
    return trainer


def latest_checkpoint(folder: Path) -> str | None:
    steps = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return str(max(steps)[1]) if steps else None


def run(cfg: SftConfig, echo=print, backend=None) -> Path:
    """Train and write the stage folder; `backend`: one already loaded from `cfg.model` with a
    fresh LoRA (the traj stage passes its student's, so the model is loaded once)."""
    from contextlib import ExitStack

    from transformers import set_seed

    from minisearch.agent.backends import load_backend
    from minisearch.eval.evaluate import evaluate, evaluate_once

    if bool(cfg.eval_tasks) != bool(cfg.index):
        raise UserError("a held-out evaluation needs both the tasks and the index: --eval-tasks FILE --index DIR")
    records = [r for f in trajectory_files(cfg.data) for r in read_jsonl(f)]
    eval_tasks = list(read_jsonl(cfg.eval_tasks))[:cfg.eval_limit] if cfg.eval_tasks else []
    if backend is None:
        set_seed(cfg.seed)  # the fresh LoRA weights depend on it: same seed, same run
        backend = load_backend(cfg.backend, cfg.model, cfg.adapter, cfg.lora_rank, cfg.train_embeddings)
    rows, skipped = examples(backend.tokenizer, records, cfg.max_len)
    if not rows:
        raise UserError(f"{cfg.data}: no trajectory fits in max_len={cfg.max_len} tokens (skipped {dict(skipped)})")
    with stage_folder(cfg.out, asdict(cfg), resume=True) as (tmp, counts), ExitStack() as stack:
        if eval_tasks:
            from minisearch.search import open_searcher

            searcher = stack.enter_context(open_searcher(cfg.index))
            before = evaluate_once(backend, searcher, eval_tasks, cfg.rollout, tmp / "eval_before.json")
            echo(f"sft: held-out before training {before}")
        trainer = make_trainer(backend, rows, cfg, tmp, echo)
        resume = latest_checkpoint(tmp / "checkpoints")
        trim_metrics(tmp / "metrics.jsonl", int(resume.rsplit("-", 1)[1]) if resume else 0)
        if resume:
            echo(f"sft: resuming from {resume}")
        trainer.train(resume_from_checkpoint=resume)
        backend.save_adapter(tmp / "adapter")
        history = list(read_jsonl(tmp / "metrics.jsonl"))
        counts.update(trajectories=len(records), examples=len(rows), skipped=dict(skipped),
                      steps=trainer.state.global_step, resumed_from=resume,
                      first_loss=history[0]["loss"], final_loss=history[-1]["loss"],
                      final_token_acc=history[-1]["token_acc"])
        if eval_tasks:
            after, samples = evaluate(backend, searcher, eval_tasks, cfg.rollout)
            write_jsonl(tmp / "eval_samples.jsonl", samples)
            counts.update(eval_before=before, eval_after=after)
            echo(f"sft: held-out after training {after}")
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    echo(f"sft: loss {counts['first_loss']:.3f} -> {counts['final_loss']:.3f} over {counts['steps']} steps; "
         f"adapter in {Path(cfg.out) / 'adapter'}")
    return Path(cfg.out)
