"""The dapo stage: DAPO reinforcement learning of the agent's LoRA adapter, over the rollout engine.

    minisearch dapo runs/demo/ramp/train.jsonl --index runs/demo/index --model runs/demo/warmup \\
        --adapter runs/demo/sft/adapter --out runs/demo/dapo

Each step, for tasks q drawn from the curriculum, G trajectories o_1..o_G are sampled and
scored (rewards.py), R_i the reward of o_i; the policy follows the clipped token-level
objective of Yu et al. 2025 ("DAPO"), written out with its shapes in `dapo_math.py`.

m_it is 1 on model-written tokens and 0 on the prompt and on every <information> block
(`rollout.render`), so observations never enter the loss; the average is over all
model-written tokens of the (mini-)batch, not per sequence ("token-level"). pi_old is the
adapter that sampled the batch, its log-probs recomputed by the training model (a 4-bit vLLM
sampler's own log-probs differ); the batch is cut into `updates` mini-batches, one optimiser
step each, so later mini-batches are off-policy and the asymmetric clip (clip-higher) acts
(`dapo_update.py`).
pi_old, pi_ref and pi_theta are scored in one mode (`Scorer.scoring_mode`: train mode, dropout
off), so the first mini-batch is exactly on-policy: its largest |pi_theta / pi_old - 1| is
logged as `ratio_error` each step (~1e-6 in float32, 0 in bf16 since pi_old is scored in the same
micro-batches; far more means the two passes differ).

Dynamic sampling: a group whose rewards are all equal has A_i = 0 and teaches nothing; it is
dropped and more tasks are sampled until `batch_tasks` groups are kept or `max_gen_rounds`
generation rounds were spent (the kept fraction is logged). Overlong shaping: with L the
completion's length (every token after the prompt, search results included, since the
budget that truncates a trajectory is on its total length) and L_max its budget, a
completion within `overlong_buffer` of L_max gets - overlong_penalty * (L - (L_max - buffer)) / buffer added to
its reward; a truncated one is masked out of the loss and left out of its group's
statistics (`truncated: mask`) or gets the full penalty (`truncated: penalise`).

A compact loop of our own: TRL's GRPOTrainer has the DAPO loss and (since 2026-02) a multi-turn
tool loop, but no dynamic sampling. Reused: the rollout engine, `render`, the backends'
log-probs, the rewards, peft's adapter saving. After every optimiser step the gpu backend
pushes the LoRA weights to its vLLM engine (`sync_lora`); the cpu backend samples from the
training model itself. A checkpoint (trainable weights, optimiser, RNG states, curriculum,
step) is written every `save_every` steps; rerunning the same command resumes from it (on
the CPU to the same adapter; vLLM's sampling is not seeded per step, so a resumed GPU run
continues correctly but not bit for bit). Each step's line (reward and its parts, kept
groups, model tokens, searches, clip, entropy, curriculum k) goes to `metrics.jsonl` and the
run's trackers (`minisearch.steplog`), the held-out checks to the trackers as heldout/*.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from minisearch.agent.backends import BACKENDS
from minisearch.agent.rollout import RolloutConfig, rollout
from minisearch.checkpoint import load_state, save_state
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.rundir import stage_folder
from minisearch.settings import SettingError, Settings, setting
from minisearch.steplog import StepLog, numbers
from minisearch.train.curriculum import MODES, Curriculum
from minisearch.train.dapo_math import informative, overlong_shaping
from minisearch.train.dapo_update import update, valid_members
from minisearch.train.keeper import Keeper, split_validation
from minisearch.train.rewards import Outcome, RewardConfig, reward_parts

TRUNCATED = ("mask", "penalise")


@dataclass
class DapoConfig(Settings):
    tasks: str = setting(help="RAMP or QA tasks (JSONL).", path=True, arg=True)
    index: str = setting(help="The index the agent searches (a folder or a server URL).", path=True)
    model: str = setting(help="Base model folder or Hugging Face id.", path=True)
    out: str = setting(help="Stage folder to write.")
    adapter: str | None = setting(None, help="Start from this LoRA adapter (the sft stage's) [default: a fresh "
                                             "one].", path=True)
    model_backend: str = setting("cpu", help="Where the model trains and samples.", choices=BACKENDS, was="backend")
    lora_rank: int = setting(16, help="Rank of a fresh LoRA adapter (0: train the given adapter).")
    steps: int = setting(20, help="Training steps.", min=1)
    batch_tasks: int = setting(8, help="Groups kept per step (dynamic sampling).", min=1)
    group: int = setting(4, help="G: samples per task (DAPO compares them, so at least 2).", min=2)
    max_gen_rounds: int = setting(3, help="Dynamic sampling: generation rounds per step at most.", min=1)
    updates: int = setting(2, help="Mini-batches (optimiser steps) per batch.", min=1)
    micro_tokens: int = setting(8192, help="Padded tokens per forward/backward: bounds memory, not the math.",
                                min=1)
    grad_checkpoint: bool = setting(True, help="Recompute the body's activations in backward (where the model "
                                               "allows).")
    lr: float = setting(1e-4, help="Learning rate.")
    eps_low: float = setting(0.2, help="Lower clip of the importance ratio.", min=0.0)
    eps_high: float = setting(0.28, help="Upper clip (clip-higher).", min=0.0)
    kl_coef: float = setting(0.0, help="KL penalty against the start (DAPO: 0).", min=0.0)
    overlong_buffer: int = setting(128, help="Tokens before the limit where overlong shaping starts.", min=0)
    overlong_penalty: float = setting(1.0, help="Reward taken off at the limit (linear over the buffer).", min=0.0)
    truncated: str = setting("mask", choices=TRUNCATED,
                             help="A trajectory cut by the token budget: mask its loss, or penalise it.")
    curriculum: str = setting("staged", choices=MODES,
                              help="staged: k = 1, 2, ... masks in turn; mixed: all tasks at once.")
    promote_steps: int = setting(10, help="Steps per curriculum stage (0: off).", min=0)
    promote_reward: float = setting(0.0, help="Mean reward that promotes to the next stage (0: off).", min=0.0)
    save_every: int = setting(5, help="Checkpoint every N steps (a rerun resumes).", min=1)
    samples_per_step: int = setting(2, help="Sample trajectories written to the log per step.", min=0)
    val_tasks: int = setting(0, help="Tasks held out of `tasks` as the stage's own validation split, scored greedily "
                                     "at the start and every val_every steps: the best adapter is kept (0: the last).",
                             min=0)
    val_every: int = setting(10, help="Steps between validation checks.", min=1)
    eval_tasks: str | None = setting(None, help="Held-out tasks scored before and after training.", path=True)
    eval_limit: int = setting(64, help="Held-out tasks scored.", min=1)
    judge_model: str | None = setting(None, help="The model that judges answers when the answer reward is judge.",
                                      path=True)
    judge_timeout: float = setting(60.0, help="Seconds a judge batch may take before the fallback metric "
                                              "scores it.", min=0.0)
    seed: int = setting(0, help="Seed of sampling and task order.")
    reward: RewardConfig = setting(RewardConfig())
    rollout: RolloutConfig = setting(RolloutConfig(temperature=1.0))

    def validate(self):
        if self.reward.answer == "judge" and not self.judge_model:
            raise SettingError("the judge reward needs a model to judge with: set judge_model (--judge-model "
                               "PATH_OR_ID)")
        if self.lora_rank == 0 and not self.adapter:
            raise SettingError("nothing to train: give an adapter (--adapter) or a LoRA rank > 0")


# ---- one step: sample, score, keep informative groups ----


@dataclass
class Sample:
    task: dict
    traj: object                    # rollout.Trajectory
    parts: dict                     # reward parts
    reward: float
    truncated: bool


def score_groups(trajs, by_id: dict, cfg: DapoConfig, prompt_len: dict, reward_fn=None,
                 judge=None) -> list[list[Sample]]:
    """Group the trajectories by task and score each (reward parts + overlong shaping)."""
    groups: dict[str, list[Sample]] = {}
    budget_total = cfg.rollout.max_total_tokens
    judged = [None] * len(trajs)
    if judge is not None and reward_fn is None:  # one judge batch for the whole round
        judged = judge.score([(by_id[t.task_id], t.answer) for t in trajs])
    for t, verdict in zip(trajs, judged):
        task = by_id[t.task_id]
        parts = reward_fn(task, t) if reward_fn else reward_parts(task, Outcome.of(t), cfg.reward, verdict)
        length, budget = len(t.ids) - prompt_len[t.task_id], budget_total - prompt_len[t.task_id]
        truncated = t.end == "length"
        if truncated:
            shaped = -cfg.overlong_penalty if cfg.truncated == "penalise" else 0.0
        else:
            shaped = overlong_shaping(length, budget, cfg.overlong_buffer, cfg.overlong_penalty)
        groups.setdefault(t.task_id, []).append(Sample(task, t, parts, parts["reward"] + shaped, truncated))
    return list(groups.values())


def collect(backend, searcher, curriculum: Curriculum, rng: random.Random, cfg: DapoConfig, reward_fn=None,
            judge=None):
    """Sample groups until `batch_tasks` informative ones are kept (or the round cap); returns
    (kept groups, every sample generated, generated group count)."""
    import torch

    kept, every, generated = [], [], 0
    rcfg = replace(cfg.rollout, group=cfg.group)
    for _ in range(cfg.max_gen_rounds):
        tasks = curriculum.sample(rng, cfg.batch_tasks - len(kept))
        tasks = [{**t, "id": f"{t['id']}@{generated + i}"} for i, t in enumerate(tasks)]  # a task may recur
        by_id = {t["id"]: t for t in tasks}
        trajs = rollout(tasks, backend.generate, searcher.search, backend.tokenizer, rcfg,
                        max_context=backend.max_context)
        prompt_len = {t.task_id: len(t.segments[0].token_ids) for t in trajs}
        groups = score_groups(trajs, by_id, cfg, prompt_len, reward_fn, judge)
        generated += len(groups)
        every += [s for g in groups for s in g]
        rewards = torch.tensor([[s.reward for s in g] for g in groups])  # (N, G)
        kept += [g for g, ok in zip(groups, informative(rewards, valid_members(groups, cfg)).tolist()) if ok]
        if len(kept) >= cfg.batch_tasks:
            break
    return kept[:cfg.batch_tasks], every, generated


# ---- the stage ----


def step_row(step: int, k: int, every: list[Sample], kept: list, generated: int, stats: dict, seconds: float) -> dict:
    """The metrics line of one step: the policy's rewards over everything it sampled."""
    n = max(1, len(every))
    def mean(f):
        return round(sum(f(s) for s in every) / n, 4)
    model_tokens = mean(lambda s: sum(len(seg.token_ids) for seg in s.traj.segments if seg.who == "model"))
    return {"step": step, "k": k, "reward": mean(lambda s: s.reward), "format": mean(lambda s: s.parts["format"]),
            "answer": mean(lambda s: s.parts["answer"]), "kept": len(kept), "generated": generated,
            "kept_fraction": round(len(kept) / max(1, generated), 4), "model_tokens": model_tokens,
            "searches": mean(lambda s: s.traj.searches), "truncated": mean(lambda s: float(s.truncated)),
            **{key: float(f"{v:.3g}") if key == "ratio_error" else round(v, 4) for key, v in stats.items()},
            "seconds": round(seconds, 1)}


def write_samples(folder: Path, step: int, every: list[Sample], n: int) -> None:
    """A few readable trajectories of this step: the task, the reward parts, the whole exchange."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in every[:n]:
        lines += [f"## {s.task['id']}  reward {s.reward:.3f}  {json.dumps(s.parts)}", "", s.task["question"], "",
                  s.traj.completion_text(), "", ""]
    (folder / f"step-{step:04d}.md").write_text("\n".join(lines), encoding="utf-8")


def run(cfg: DapoConfig, echo=print, reward_fn=None) -> Path:
    """Train and write the stage folder (adapter/, samples/, metrics.jsonl, held-out eval).

    `reward_fn(task, trajectory) -> {"reward", "format", "answer", ...}` replaces the recipe's
    rewards (tests use it for a task a tiny model can learn in a few steps)."""
    from contextlib import ExitStack

    import torch
    from transformers import set_seed

    from minisearch.agent.backends import load_backend

    tasks = list(read_jsonl(cfg.tasks))
    if not tasks:
        raise UserError(f"{cfg.tasks} holds no tasks; make RAMP tasks with `minisearch ramp CORPUS --out DIR`")
    eval_tasks = list(read_jsonl(cfg.eval_tasks))[:cfg.eval_limit] if cfg.eval_tasks else []
    tasks, val_tasks = split_validation(tasks, cfg.val_tasks, cfg.seed)
    curriculum = Curriculum.from_tasks(tasks, cfg.curriculum, promote_steps=cfg.promote_steps,
                                       promote_reward=cfg.promote_reward)
    set_seed(cfg.seed)
    with ExitStack() as owned:  # closed at the end, so the next stage finds the GPU free
        backend = owned.enter_context(load_backend(cfg.model_backend, cfg.model, cfg.adapter, cfg.lora_rank))
        backend.set_grad_checkpoint(cfg.grad_checkpoint)
        params = [p for p in backend.model.parameters() if p.requires_grad]
        if not params:
            raise UserError("nothing to train: load the model with an adapter (--adapter) or a LoRA rank > 0")
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        rng = random.Random(cfg.seed)
        judge = None
        if cfg.reward.answer == "judge":
            from minisearch.train.rewards import Judge

            judge_model = owned.enter_context(load_backend(cfg.model_backend, cfg.judge_model))  # beside the policy
            judge = Judge(judge_model, cfg.judge_timeout, cfg.reward.judge_fallback)
        counts = _train(cfg, backend, optimizer, rng, judge, curriculum, eval_tasks, val_tasks, echo, reward_fn)
    echo(f"dapo: reward {counts['first_reward']:.3f} -> {counts['final_reward']:.3f} over {cfg.steps} steps; "
         f"groups dropped by k {counts['dropped_by_k']}; "
         + (f"kept the adapter of step {counts['kept_step']} (validation); " if "kept_step" in counts else "")
         + f"adapter in {Path(cfg.out) / 'adapter'}")
    return Path(cfg.out)


def _train(cfg: DapoConfig, backend, optimizer, rng, judge, curriculum, eval_tasks, val_tasks, echo,
           reward_fn) -> dict:
    """The steps, resumable, inside the stage folder; returns its counts."""
    from contextlib import ExitStack

    from tqdm import tqdm

    from minisearch.eval.evaluate import evaluate, evaluate_once
    from minisearch.search import open_searcher

    with stage_folder(cfg.out, asdict(cfg), resume=True) as (tmp, counts), open_searcher(cfg.index) as searcher, \
            ExitStack() as stack:
        start = 0
        if (tmp / "checkpoint.pt").is_file():
            state = load_state(tmp / "checkpoint.pt", backend.model, optimizer, rng)
            curriculum.load_state(state["curriculum"])
            start = state["step"]
            backend.sync_lora()
            echo(f"dapo: resuming after step {start}")
        log = stack.enter_context(StepLog(cfg.out, tmp, start, asdict(cfg)))
        greedy = replace(cfg.rollout, temperature=0.0, group=1)
        before = evaluate_once(backend, searcher, eval_tasks, greedy, tmp / "eval_before.json") if eval_tasks else None
        if before:
            log.scalars(numbers(before, "heldout/"), 0)
            echo(f"dapo: held-out before training {before}")
        keeper = Keeper(tmp, val_tasks, cfg.val_every)
        if start == 0 and keeper.due(0, cfg.steps):
            echo(f"dapo: validation at the start {keeper.check(0, backend, searcher, greedy)['val_score']:.3f}")
        started = time.time()
        bar = tqdm(range(start, cfg.steps), desc="dapo", unit=" steps", initial=start, total=cfg.steps,
                   mininterval=2.0)
        for step in bar:
            k = curriculum.k
            kept, every, generated = collect(backend, searcher, curriculum, rng, cfg, reward_fn, judge)
            stats = update(backend, kept, cfg, optimizer) if kept else {"loss": 0.0, "clip": 0.0, "entropy": 0.0}
            row = step_row(step + 1, k, every, kept, generated, stats, time.time() - started)
            promoted = curriculum.update(row["reward"])
            if keeper.due(step + 1, cfg.steps):
                row.update(keeper.check(step + 1, backend, searcher, greedy))
            log.row(row)
            write_samples(tmp / "samples", step + 1, every, cfg.samples_per_step)
            bar.write(f"dapo step {step + 1}/{cfg.steps} k={k} reward {row['reward']:.3f} (format {row['format']:.2f} "
                      f"answer {row['answer']:.2f}) kept {len(kept)}/{generated} tokens {row['model_tokens']:.0f} "
                      f"searches {row['searches']:.2f} clip {row['clip']:.3f} entropy {row['entropy']:.2f}"
                      + (f" val {row['val_score']:.3f} (best: step {row['val_best_step']})" if "val_score" in row
                         else "") + (f" -> stage k={curriculum.k}" if promoted else "") + f" {row['seconds']:.0f}s")
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
                save_state(tmp / "checkpoint.pt", backend.model, optimizer, rng, step=step + 1,
                           curriculum=curriculum.state())
        kept_step = keeper.finish(backend, tmp / "adapter", cfg.steps)
        history = list(read_jsonl(tmp / "metrics.jsonl"))
        by_k: dict[int, list[float]] = {}
        for h in history:
            by_k.setdefault(h["k"], []).append(h["kept_fraction"])
        counts.update(steps=cfg.steps, resumed_after=start or None, final_stage_k=curriculum.k,
                      first_reward=history[0]["reward"], final_reward=history[-1]["reward"],
                      mean_kept_fraction=round(sum(h["kept_fraction"] for h in history) / len(history), 4),
                      dropped_by_k={f"k={k}": round(1 - sum(v) / len(v), 4) for k, v in sorted(by_k.items())},
                      **({"kept_step": kept_step, "val": keeper.state["history"]} if val_tasks else {}),
                      **({"judge_fallbacks": judge.fallbacks} if judge else {}))
        if eval_tasks:
            after, samples = evaluate(backend, searcher, eval_tasks, greedy)
            write_jsonl(tmp / "eval_samples.jsonl", samples)
            counts.update(eval_before=before, eval_after=after)
            log.scalars(numbers(after, "heldout/"), cfg.steps)
            echo(f"dapo: held-out after training {after}")
        (tmp / "checkpoint.pt").unlink(missing_ok=True)
    return counts
