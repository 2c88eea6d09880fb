"""The traj stage: accepted trajectories for RAMP or QA tasks, from a teacher, then from
the student itself (self-evolving rounds).

    minisearch traj runs/demo/ramp/train.jsonl --index runs/demo/index --out runs/demo/traj
    minisearch traj TASKS --index DIR --out DIR --teacher agents --teacher-model Qwen/Qwen2.5-7B-Instruct

Round 0: the teacher (scripted for the toy world, or the multi-agent LLM teacher) works
through the first `limit` tasks. Rejection keeps a trajectory only if its format is valid
(it ended with an answer, after at least one search) and its answer is right: every span
for RAMP, F1 >= `qa_f1` for QA. Round r >= 1: a student is fine-tuned (sft stage) on the
pool so far, runs alone on `round_tasks` fresh tasks, and its correct trajectories join the
pool. Writes `round-N.jsonl` (accepted only) and `stats.json` (acceptance rate and pool size
per round).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minisearch.errors import UserError
from minisearch.evaluate import score
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.metrics import is_ramp
from minisearch.rundir import stage_folder
from minisearch.teachers import TeachConfig, teach


@dataclass
class TrajConfig:
    tasks: str
    index: str
    out: str
    teacher: str = "scripted"          # scripted | agents
    teacher_model: str | None = None   # the model that plays the agents' roles
    backend: str = "cpu"
    corpus: str | None = None          # passage titles, for the scripted teacher's QA tasks
    limit: int | None = None           # tasks for round 0 (all by default)
    batch: int = 64                    # tasks per teaching batch
    rounds: int = 1                    # 1 = teacher only; r > 1 adds r - 1 student rounds
    round_tasks: int = 200             # fresh tasks per student round
    student_model: str | None = None   # base model of the student in rounds >= 1
    student_steps: int = 60
    qa_f1: float = 0.8
    seed: int = 0
    teach: TeachConfig = field(default_factory=TeachConfig)


def judge(task: dict, answer: str | None, end: str, searches: int, qa_f1: float) -> tuple[bool, dict]:
    """(accepted, reward parts): valid format, at least one search, and a right answer."""
    parts = score(task, answer)
    parts["format"] = float(end == "answer" and searches >= 1)
    right = parts["all_spans"] == 1.0 if is_ramp(task) else parts["f1"] >= qa_f1
    return bool(parts["format"] and right), parts


def make_teacher(cfg: TrajConfig):
    if cfg.teacher == "scripted":
        from minisearch.teachers.scripted import ScriptedTeacher

        names = {}
        if cfg.corpus:
            from minisearch.corpus import iter_passages
            from minisearch.records import split_contents

            names = {p["id"]: split_contents(p["contents"])[0] for p in iter_passages(cfg.corpus)}
        return ScriptedTeacher(cfg.teach, names)
    if cfg.teacher == "agents":
        if not cfg.teacher_model:
            raise UserError("the agents teacher needs a model to play its roles: --teacher-model PATH_OR_ID")
        from minisearch.backends import load_backend
        from minisearch.teachers.agents import AgentTeacher

        return AgentTeacher(load_backend(cfg.backend, cfg.teacher_model), cfg.teach)
    raise UserError(f"unknown teacher {cfg.teacher!r}: choose scripted or agents")


def teacher_round(tasks: list[dict], cfg: TrajConfig, searcher, echo) -> tuple[list[dict], dict]:
    from tqdm import tqdm

    teacher = make_teacher(cfg)
    accepted, ends = [], {}
    for start in tqdm(range(0, len(tasks), cfg.batch), desc="teacher", unit=" batches", mininterval=2.0):
        for e in teach(tasks[start:start + cfg.batch], teacher, searcher.search, cfg.teach):
            ok, parts = judge(e.task, e.answer, e.end, len(e.queries), cfg.qa_f1)
            ends[e.end.split(":")[0]] = ends.get(e.end.split(":")[0], 0) + 1
            if ok:
                accepted.append({**e.record(cfg.teach.max_turns, teacher.name), "reward": parts})
    return accepted, {"ends": ends}


def student_round(r: int, tasks: list[dict], pool: list[dict], cfg: TrajConfig, searcher, tmp: Path, echo):
    """Fine-tune a student on the pool, let it answer fresh tasks alone, keep its right answers."""
    from minisearch.backends import load_backend
    from minisearch.rollout import RolloutConfig, rollout, to_record
    from minisearch.sft import SftConfig
    from minisearch.sft import run as sft_run

    if not cfg.student_model:
        raise UserError("self-evolving rounds need the student's base model: --student-model PATH")
    work = tmp / f"student-{r}"
    write_jsonl(work / "pool.jsonl", pool)
    sft_run(SftConfig(data=str(work / "pool.jsonl"), model=cfg.student_model, out=str(work / "sft"),
                      backend=cfg.backend, max_steps=cfg.student_steps, seed=cfg.seed + r, lr=2e-3), echo)
    student = load_backend(cfg.backend, cfg.student_model, work / "sft" / "adapter")
    rcfg = RolloutConfig(max_turns=cfg.teach.max_turns, topk=cfg.teach.topk, words_per_hit=cfg.teach.words_per_hit,
                         temperature=0.0, max_new_tokens=256, max_total_tokens=2048)
    accepted = []
    by_id = {t["id"]: t for t in tasks}
    for traj in rollout(tasks, student.generate, searcher.search, student.tokenizer, rcfg):
        task = by_id[traj.task_id]
        ok, parts = judge(task, traj.answer, traj.end, traj.searches, cfg.qa_f1)
        if ok:
            accepted.append(to_record(traj, task, cfg.teach.max_turns, f"student-{r}", reward=parts))
    return accepted, {}


def run(cfg: TrajConfig, echo=print) -> Path:
    from minisearch.search import open_searcher

    tasks = list(read_jsonl(cfg.tasks))
    if not tasks:
        raise UserError(f"{cfg.tasks} holds no tasks; make RAMP tasks with `minisearch ramp CORPUS --out DIR`")
    random.Random(cfg.seed).shuffle(tasks)
    first = cfg.limit or len(tasks)
    searcher = open_searcher(cfg.index)
    stats, pool = [], []
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        for r in range(cfg.rounds):
            if r == 0:
                chunk = tasks[:first]
                accepted, extra = teacher_round(chunk, cfg, searcher, echo)
            else:
                at = first + (r - 1) * cfg.round_tasks
                chunk = tasks[at:at + cfg.round_tasks]
                if not chunk:
                    echo(f"traj: no fresh tasks left for round {r}; stopping")
                    break
                accepted, extra = student_round(r, chunk, pool, cfg, searcher, tmp, echo)
            pool += accepted
            write_jsonl(tmp / f"round-{r}.jsonl", accepted)
            row = {"round": r, "who": cfg.teacher if r == 0 else f"student-{r}", "tasks": len(chunk),
                   "accepted": len(accepted), "acceptance": round(len(accepted) / max(1, len(chunk)), 4),
                   "pool": len(pool), **extra}
            stats.append(row)
            echo(f"traj round {r} ({row['who']}): {row['accepted']}/{row['tasks']} accepted "
                 f"({row['acceptance']:.0%}), pool {row['pool']}")
        searcher.close()
        if not pool:
            raise UserError("no trajectory was accepted; look at the teacher's answers (is the index the "
                            "corpus the tasks came from?)")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        counts.update(rounds=stats, pool=len(pool))
    return Path(cfg.out)
