"""The training stages' commands (`traj`, `sft`); `cli.py` adds them to the `minisearch` group."""

from __future__ import annotations

import click

from minisearch.errors import user_errors


@click.command()
@click.argument("tasks")
@click.option("--index", "index_dir", required=True, help="The index the teacher searches (a folder or a server URL).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--teacher", type=click.Choice(["scripted", "agents"]), default="scripted", show_default=True,
              help="scripted: knows the toy world; agents: planner/rewriter/observer played by --teacher-model.")
@click.option("--teacher-model", help="Model folder or Hugging Face id for the agents teacher.")
@click.option("--backend", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--corpus", help="Passages (for the scripted teacher's QA tasks: entity names).")
@click.option("--limit", type=int, help="Tasks for the teacher's round (default: all).")
@click.option("--rounds", default=1, show_default=True, help="1 = teacher only; each more adds a student round.")
@click.option("--round-tasks", default=200, show_default=True, help="Fresh tasks per student round.")
@click.option("--student-model", help="Base model of the student (self-evolving rounds).")
@click.option("--answer-form", type=click.Choice(["paragraph", "spans"]), default="paragraph", show_default=True,
              help="How RAMP answers are written: the whole paragraph, or the spans as 'a; b'.")
@click.option("--max-turns", default=4, show_default=True)
@click.option("-k", "topk", default=3, show_default=True, help="Passages per search.")
@click.option("--seed", default=0, show_default=True)
@user_errors
def traj(tasks, index_dir, out, teacher, teacher_model, backend, corpus, limit, rounds, round_tasks, student_model,
         answer_form, max_turns, topk, seed):
    """Make accepted agent trajectories for TASKS (RAMP or QA JSONL) with a teacher."""
    from minisearch.train.teachers import TeachConfig
    from minisearch.train.traj import TrajConfig, run

    run(TrajConfig(tasks=tasks, index=index_dir, out=out, teacher=teacher, teacher_model=teacher_model,
                   backend=backend, corpus=corpus, limit=limit, rounds=rounds, round_tasks=round_tasks,
                   student_model=student_model, seed=seed,
                   teach=TeachConfig(max_turns=max_turns, topk=topk, answer_form=answer_form)), echo=click.echo)
    click.echo(f"wrote {out}")


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--model", required=True, help="Base model folder or Hugging Face id.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--adapter", help="Continue from this LoRA adapter.")
@click.option("--backend", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--lora-rank", default=16, show_default=True)
@click.option("--train-embeddings/--fixed-embeddings", default=None,
              help="Train the embeddings too (default: a fresh adapter on the tiny model does, a loaded one goes on).")
@click.option("--lr", default=2e-4, show_default=True)
@click.option("--epochs", default=2.0, show_default=True)
@click.option("--max-steps", default=-1, show_default=True, help="Overrides --epochs when > 0.")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--grad-accum", default=1, show_default=True)
@click.option("--save-steps", default=50, show_default=True, help="Checkpoint every N steps (a rerun resumes).")
@click.option("--eval-tasks", help="Held-out tasks scored before and after training (needs --index).")
@click.option("--index", "index_dir", help="Index for the held-out evaluation.")
@click.option("--eval-limit", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@user_errors
def sft(data, model, out, adapter, backend, lora_rank, train_embeddings, lr, epochs, max_steps, batch_size,
        grad_accum, save_steps, eval_tasks, index_dir, eval_limit, seed):
    """LoRA SFT on DATA (traj folders or JSONL files of trajectories, one or more); loss on
    model-written tokens only."""
    from minisearch.train.sft import SftConfig, run

    run(SftConfig(data=data[0] if len(data) == 1 else list(data), model=model, out=out, adapter=adapter,
                  backend=backend, lora_rank=lora_rank, train_embeddings=train_embeddings, lr=lr, epochs=epochs,
                  max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, save_steps=save_steps,
                  eval_tasks=eval_tasks, index=index_dir, eval_limit=eval_limit, seed=seed),
        echo=click.echo)


@click.command()
@click.argument("tasks")
@click.option("--index", "index_dir", required=True, help="The index the agent searches (a folder or a server URL).")
@click.option("--model", required=True, help="Base model folder or Hugging Face id.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Stage folder to write.")
@click.option("--adapter", help="Start from this LoRA adapter (the sft stage's); default: a fresh one.")
@click.option("--backend", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--lora-rank", default=16, show_default=True)
@click.option("--steps", default=20, show_default=True)
@click.option("--batch-tasks", default=8, show_default=True, help="Groups kept per step (dynamic sampling).")
@click.option("--group", default=4, show_default=True, help="Samples per task (G).")
@click.option("--updates", default=2, show_default=True, help="Optimiser steps (mini-batches) per batch.")
@click.option("--max-gen-rounds", default=3, show_default=True, help="Generation rounds per step at most.")
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--curriculum", type=click.Choice(["staged", "mixed"]), default="staged", show_default=True)
@click.option("--promote-steps", default=10, show_default=True, help="Steps per curriculum stage (0: off).")
@click.option("--promote-reward", default=0.0, show_default=True, help="Mean reward that promotes (0: off).")
@click.option("--answer-reward", type=click.Choice(["auto", "spans", "recall", "f1", "em", "judge"]), default="auto",
              show_default=True, help="auto: spans for RAMP tasks, guarded recall for QA; judge: --judge-model.")
@click.option("--judge-model", help="Model folder or Hugging Face id that judges answers (--answer-reward judge).")
@click.option("--format-weight", default=0.1, show_default=True)
@click.option("--max-turns", default=4, show_default=True)
@click.option("--max-new-tokens", default=128, show_default=True, help="Per model turn.")
@click.option("--max-total-tokens", default=1024, show_default=True, help="Prompt and everything after it.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--save-every", default=5, show_default=True, help="Checkpoint every N steps (a rerun resumes).")
@click.option("--eval-tasks", help="Held-out tasks scored before and after training.")
@click.option("--eval-limit", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@user_errors
def dapo(tasks, index_dir, model, out, adapter, backend, lora_rank, steps, batch_tasks, group, updates,
         max_gen_rounds, lr, curriculum, promote_steps, promote_reward, answer_reward, format_weight, max_turns,
         max_new_tokens, max_total_tokens, temperature, save_every, eval_tasks, eval_limit, seed, judge_model):
    """DAPO on TASKS (RAMP or QA JSONL) with hybrid rewards and a mask-count curriculum."""
    from minisearch.agent.rollout import RolloutConfig
    from minisearch.train.dapo import DapoConfig, run
    from minisearch.train.rewards import RewardConfig

    run(DapoConfig(tasks=tasks, index=index_dir, model=model, out=out, adapter=adapter, backend=backend,
                   lora_rank=lora_rank, steps=steps, batch_tasks=batch_tasks, group=group, updates=updates,
                   max_gen_rounds=max_gen_rounds, lr=lr, curriculum=curriculum, promote_steps=promote_steps,
                   promote_reward=promote_reward, save_every=save_every, eval_tasks=eval_tasks,
                   eval_limit=eval_limit, seed=seed, judge_model=judge_model,
                   reward=RewardConfig(answer=answer_reward, format_weight=format_weight),
                   rollout=RolloutConfig(max_turns=max_turns, max_new_tokens=max_new_tokens,
                                         max_total_tokens=max_total_tokens, temperature=temperature)),
        echo=click.echo)
