"""The sft stage: LoRA training on accepted trajectories, loss only on model-written tokens.

    minisearch sft runs/demo/traj --model runs/demo/warm --out runs/demo/sft \\
        --eval-tasks runs/demo/ramp/dev.jsonl --index runs/demo/index

Each trajectory is tokenised segment by segment and rendered by `rollout.render`, the same
function RL uses; labels are the token ids where the mask is 1 and -100 elsewhere, so the
prompt and every `<information>` block are context, never targets:

    loss = - sum_{t: mask_t = 1} log p(x_t | x_<t) / #{t: mask_t = 1}

Training is transformers' `Trainer` (it honours -100 labels, and brings gradient
accumulation, length-grouped batches, checkpoints with optimiser and RNG state, and resume);
on the gpu backend the model is Unsloth's, which patches the same Trainer. The step itself is
`batch_backward`: micro-batches of at most `micro_tokens` padded tokens, each scored from the
body's hidden states with the output layer only at targets (`agent/backends/scoring.py`;
never `outputs.logits`, which Unsloth leaves empty when given labels). One log line per
step (loss, token accuracy on the targets, learning rate) to `metrics.jsonl` and the run's
trackers (`minisearch.steplog`: TensorBoard by default). A killed run
keeps `sft.tmp/checkpoints/`; rerunning the same command resumes from the last one.
With `eval_tasks` and `index`, held-out accuracy is measured before and after training.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.agent.backends import BACKENDS
from minisearch.agent.rollout import RolloutConfig, from_record, render
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.rundir import stage_folder
from minisearch.settings import SettingError, Settings, setting
from minisearch.steplog import StepLog, numbers


@dataclass
class SftConfig(Settings):
    data: str | list[str] = setting(help="Trajectories: traj stage folders (their round-*.jsonl) or JSONL files, "
                                         "one or more.", path=True, arg=True)
    model: str = setting(help="Base model folder or Hugging Face id.", path=True)
    out: str = setting(help="Stage folder to write.")
    adapter: str | None = setting(None, help="Continue from this LoRA adapter instead of a fresh one.", path=True)
    model_backend: str = setting("cpu", help="Where the model trains.", choices=BACKENDS, was="backend")
    lora_rank: int = setting(16, help="Rank of a fresh LoRA adapter.", min=1)
    train_embeddings: bool | None = setting(None, help="Train the embeddings too [default: a fresh adapter on the "
                                                       "tiny model does, a loaded one goes on as it was].")
    lr: float = setting(2e-4, help="Peak learning rate.")
    epochs: float = setting(2.0, help="Passes over the data.", min=0.0)
    max_steps: int = setting(-1, help="Optimiser steps; overrides epochs when > 0.")
    batch_size: int = setting(8, help="Trajectories per optimiser step (before grad_accum).", min=1)
    grad_accum: int = setting(1, help="Batches accumulated per optimiser step.", min=1)
    max_len: int = setting(2048, help="Longer trajectories are skipped and counted.")
    micro_tokens: int = setting(8192, help="Padded tokens per forward/backward: bounds memory, not the math.",
                                min=1)
    grad_checkpoint: bool = setting(True, help="Recompute the body's activations in backward (where the model "
                                               "allows).")
    warmup_ratio: float = setting(0.05, help="Share of steps of linear learning-rate warm-up.", min=0.0)
    save_steps: int = setting(50, help="Checkpoint every N steps (a rerun resumes).", min=1)
    seed: int = setting(0, help="Seed of the data order and a fresh adapter.")
    eval_tasks: str | None = setting(None, help="Held-out RAMP or QA tasks scored before and after training "
                                                "(needs index).", path=True)
    index: str | None = setting(None, help="The index for the held-out evaluation.", path=True)
    eval_limit: int = setting(64, help="Held-out tasks scored.", min=1)
    rollout: RolloutConfig = setting(RolloutConfig(temperature=0.0))

    def validate(self):
        if self.warmup_ratio >= 1:  # transformers' warmup_steps reads a value below 1 as a share, 1 and up as steps
            raise SettingError(f"warmup_ratio={self.warmup_ratio}: a share of the steps, below 1 (0.05: the first 5%)")
        if self.eval_tasks and not self.index:
            raise SettingError("a held-out evaluation needs the index to search: --eval-tasks FILE --index DIR")


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


def batch_backward(backend, batch: dict, total: float, micro_tokens: int, backward: bool = True) -> dict:
    """The SFT loss of a padded batch, its gradient accumulated micro-batch by micro-batch:

        loss = - sum_{targets t} log p(x_t | x_<t) / total

    (`total`: the target count of the whole accumulated batch, so any micro-batch size gives
    the same loss and gradients). Scored by the backend from hidden states, the output layer
    only at targets (`scoring.py`): the same function on both backends. Returns the loss,
    the target count and the targets the model ranks first (token accuracy)."""
    from minisearch.agent.backends.scoring import micro_batches, score

    lengths = batch["attention_mask"].sum(dim=1).tolist()
    seqs = [batch["input_ids"][i, :n].tolist() for i, n in enumerate(lengths)]
    scored = [(batch["labels"][i, 1:n] != -100).tolist() for i, n in enumerate(lengths)]
    out = {"loss": 0.0, "targets": 0, "hits": 0}
    for micro in micro_batches(lengths, micro_tokens):
        s = score(backend, [seqs[i] for i in micro], [scored[i] for i in micro], grad=backward, hits=True)
        loss = -sum(lp.sum() for lp in s.logprobs) / total
        if backward:
            loss.backward()
        out["loss"] += loss.item()
        out["targets"] += sum(sum(scored[i]) for i in micro)
        out["hits"] += int(sum(h.sum() for h in s.hits))
    return out


def make_trainer(backend, rows: list[dict], cfg: SftConfig, folder: Path, log: StepLog, echo):
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    class MaskedTrainer(Trainer):
        """Trainer whose step is `batch_backward` (micro-batches, hidden-state scoring); it also
        measures token accuracy on the targets."""

        hits = total = 0
        loss_is_scaled_for_ga = True  # each term is divided by the accumulated batch's target count

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = True  # so the Trainer counts the targets of an accumulated batch

        def training_step(self, model, inputs, num_items_in_batch=None):
            model.train()
            inputs = self._prepare_inputs(inputs)
            total = num_items_in_batch if num_items_in_batch is not None else (inputs["labels"][:, 1:] != -100).sum()
            out = batch_backward(backend, inputs, max(1.0, float(total)), cfg.micro_tokens)
            self.hits += out["hits"]
            self.total += out["targets"]
            return torch.tensor(out["loss"], device=inputs["input_ids"].device)

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
            log.row(row)
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
        report_to="none", use_cpu=cfg.model_backend != "gpu", remove_unused_columns=False,
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
    fresh LoRA (the traj stage passes its student's, so the model is loaded once). A backend
    this function loads, it closes."""
    from transformers import set_seed

    from minisearch.agent.backends import load_backend

    records = [r for f in trajectory_files(cfg.data) for r in read_jsonl(f)]
    if not records:
        raise UserError(f"{cfg.data}: no trajectories in {', '.join(map(str, trajectory_files(cfg.data)))} "
                        "(a traj stage with allow_empty that accepted none?); look at its attempts-0.jsonl")
    eval_tasks = list(read_jsonl(cfg.eval_tasks))[:cfg.eval_limit] if cfg.eval_tasks else []
    if backend is not None:
        counts = _train(cfg, backend, records, eval_tasks, echo)
    else:
        set_seed(cfg.seed)  # the fresh LoRA weights depend on it: same seed, same run
        with load_backend(cfg.model_backend, cfg.model, cfg.adapter, cfg.lora_rank, cfg.train_embeddings) as backend:
            counts = _train(cfg, backend, records, eval_tasks, echo)
    echo(f"sft: loss {counts['first_loss']:.3f} -> {counts['final_loss']:.3f} over {counts['steps']} steps; "
         f"adapter in {Path(cfg.out) / 'adapter'}")
    return Path(cfg.out)


def _train(cfg: SftConfig, backend, records: list[dict], eval_tasks: list[dict], echo) -> dict:
    """Held-out eval before, the resumable training, the adapter, eval after; returns the counts."""
    from contextlib import ExitStack

    from minisearch.eval.evaluate import evaluate, evaluate_once

    backend.set_grad_checkpoint(cfg.grad_checkpoint)
    rows, skipped = examples(backend.tokenizer, records, cfg.max_len)
    if not rows:
        raise UserError(f"{cfg.data}: no trajectory fits in max_len={cfg.max_len} tokens (skipped {dict(skipped)})")
    with stage_folder(cfg.out, asdict(cfg), resume=True) as (tmp, counts), ExitStack() as stack:
        resume = latest_checkpoint(tmp / "checkpoints")
        log = stack.enter_context(StepLog(cfg.out, tmp, int(resume.rsplit("-", 1)[1]) if resume else 0, asdict(cfg)))
        if eval_tasks:
            from minisearch.search import open_searcher

            searcher = stack.enter_context(open_searcher(cfg.index))
            before = evaluate_once(backend, searcher, eval_tasks, cfg.rollout, tmp / "eval_before.json")
            log.scalars(numbers(before, "heldout/"), 0)
            echo(f"sft: held-out before training {before}")
        trainer = make_trainer(backend, rows, cfg, tmp, log, echo)
        if resume:
            echo(f"sft: resuming from {resume}")
        trainer.train(resume_from_checkpoint=resume)
        backend.sync_lora()  # the sampler must see the trained adapter, not the one it had before
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
            log.scalars(numbers(after, "heldout/"), trainer.state.global_step)
            echo(f"sft: held-out after training {after}")
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    return counts
