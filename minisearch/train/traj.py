"""The traj stage: accepted trajectories for RAMP or QA tasks, from a teacher, then from
the student itself (self-evolving rounds).

    minisearch traj runs/demo/ramp/train.jsonl --index runs/demo/index --model runs/demo/warmup --out runs/demo/traj
    minisearch traj TASKS --index DIR --model Qwen/Qwen2.5-1.5B-Instruct --out DIR \
        --teacher agents --teacher-model Qwen/Qwen2.5-7B-Instruct

Round 0: the teacher (scripted for the toy world, or the multi-agent LLM teacher) works
through the first `limit` tasks, as the generator of the student's own rollout loop, in the
student's tokens (`train.teachers`). Rejection keeps a trajectory only if its format is valid
(it ended with an answer, after at least one search) and its answer is right: every span
for RAMP, F1 >= `qa_f1` for QA. Round r >= 1: a student is fine-tuned (sft stage) on the
pool so far, runs alone on `round_tasks` fresh tasks, and its correct trajectories join the
pool. Writes `round-N.jsonl` (accepted only) and `stats.json` (acceptance rate and pool size
per round). A killed stage resumes: finished rounds stand, and the teacher round goes on
from its log of attempts (`attempts-0.jsonl`), teaching only the tasks not yet tried.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.agent.backends import BACKENDS
from minisearch.errors import UserError
from minisearch.eval.evaluate import score
from minisearch.jsonl import append_jsonl, read_jsonl, read_log, write_jsonl
from minisearch.metrics import is_ramp
from minisearch.rundir import stage_folder
from minisearch.settings import SettingError, Settings, setting
from minisearch.train.rewards import Outcome, format_reward
from minisearch.train.teachers import TeachConfig, teach

TEACHERS = ("scripted", "agents")


@dataclass
class TrajConfig(Settings):
    tasks: str = setting(help="RAMP or QA tasks (JSONL).", path=True, arg=True)
    index: str = setting(help="The index the teacher searches (a folder or a server URL).", path=True)
    out: str = setting(help="Stage folder to write.")
    model: str = setting(help="The student's base model: its tokenizer renders the trajectories (the token budget "
                              "counts what SFT trains on); self-evolving rounds fine-tune it.", path=True)
    teacher: str = setting("scripted", choices=TEACHERS,
                           help="scripted: knows the toy world; agents: planner/rewriter/observer played by "
                                "--teacher-model.")
    teacher_model: str | None = setting(None, help="Model folder or Hugging Face id for the agents teacher.",
                                        path=True)
    model_backend: str = setting("cpu", help="Where the models run.", choices=BACKENDS, was="backend")
    corpus: str | None = setting(None, help="Passages (for the scripted teacher's QA tasks: entity names).",
                                 path=True)
    limit: int | None = setting(None, help="Tasks for the teacher's round [default: all].", min=1)
    batch: int = setting(64, help="Tasks per teaching batch.", min=1)
    rounds: int = setting(1, help="1 = teacher only; each more adds a self-evolving student round.", min=1)
    round_tasks: int = setting(200, help="Fresh tasks per student round.", min=1)
    student_steps: int = setting(60, help="SFT steps of each student round.", min=1)
    student_lr: float = setting(2e-3, help="SFT learning rate of each student round.")
    qa_f1: float = setting(0.8, help="A QA trajectory is accepted at this F1 or above.", min=0.0)
    seed: int = setting(0, help="Seed of the task order.")
    allow_empty: bool = setting(False, help="Finish even when no trajectory is accepted (a weak teacher's round "
                                            "that is measured, beside another stage's data).")
    teach: TeachConfig = setting(TeachConfig())

    def validate(self):
        if self.teacher == "agents" and not self.teacher_model:
            raise SettingError("the agents teacher needs a model to play its roles: set teacher_model "
                               "(--teacher-model PATH_OR_ID)")


def judge(task: dict, outcome: Outcome, qa_f1: float) -> tuple[bool, dict]:
    """(accepted, reward parts): the format reward's valid format (an answer, after a search)
    and a right answer: every span for RAMP, F1 >= `qa_f1` for QA."""
    parts = {**score(task, outcome.answer), "format": format_reward(outcome, require_search=True)}
    right = parts["all_spans"] == 1.0 if is_ramp(task) else parts["f1"] >= qa_f1
    return bool(parts["format"] and right), parts


def make_teacher(cfg: TrajConfig):
    if cfg.teacher == "scripted":
        from minisearch.train.teachers.scripted import ScriptedTeacher

        names = {}
        if cfg.corpus:
            from minisearch.data.corpus import iter_passages
            from minisearch.records import passage_titles

            names = passage_titles(iter_passages(cfg.corpus))
        return ScriptedTeacher(cfg.teach, names)
    if cfg.teacher == "agents":
        from minisearch.agent.backends import load_backend
        from minisearch.train.teachers.agents import AgentTeacher

        return AgentTeacher(load_backend(cfg.model_backend, cfg.teacher_model), cfg.teach)
    raise AssertionError(cfg.teacher)  # TrajConfig checks its choices


def select(records: list[dict], by_id: dict[str, dict], qa_f1: float) -> tuple[list[dict], dict]:
    """The accepted records (with their reward parts) and how every attempt ended."""
    accepted, ends = [], Counter()
    for record in records:
        ok, parts = judge(by_id[record["task_id"]], Outcome.of(record), qa_f1)
        ends[record["end"].split(":")[0]] += 1
        if ok:
            accepted.append({**record, "reward": parts})
    return accepted, dict(ends)


def searches_by_k(records: list[dict], by_id: dict[str, dict]) -> dict:
    """Mean searches per trajectory by mask count ("k=2": 1.8), and by searches the plan needs
    ("needed=2"); QA tasks count as k=0."""
    groups: dict[str, list[int]] = {}
    for record in records:
        meta = by_id[record["task_id"]].get("metadata", {})
        n = len(record.get("queries", []))
        groups.setdefault(f"k={meta.get('mask_num', 0)}", []).append(n)
        if "searches_needed" in meta:
            groups.setdefault(f"needed={meta['searches_needed']}", []).append(n)
    return {key: round(sum(v) / len(v), 3) for key, v in sorted(groups.items())}


def teacher_round(tasks: list[dict], cfg: TrajConfig, searcher, log: Path, echo=print) -> list[dict]:
    """Every task's trajectory by the teacher, right or wrong. Each batch's records are
    appended to `log` as it finishes; a rerun reads them back and teaches only the tasks not
    tried yet (a teacher round of a 7B model takes hours, a kill loses one batch)."""
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from minisearch.agent.rollout import to_record

    wanted = {t["id"] for t in tasks}
    done = {r["task_id"]: r for r in read_log(log) if r["task_id"] in wanted}
    todo = [t for t in tasks if t["id"] not in done]
    if done:
        echo(f"traj: {len(done)} of {len(tasks)} tasks of the teacher round were tried before the stop; "
              f"{len(todo)} to go")
    if todo:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)  # the student's: trajectories in its tokens
        teacher = make_teacher(cfg)
        by_id = {t["id"]: t for t in todo}
        try:
            with log.open("a", encoding="utf-8") as f, \
                    tqdm(total=len(todo), desc="teacher", unit=" tasks", mininterval=2.0) as bar:
                for start in range(0, len(todo), cfg.batch):
                    trajs = teach(todo[start:start + cfg.batch], teacher, searcher.search, tokenizer, cfg.teach)
                    records = [to_record(t, by_id[t.task_id], cfg.teach.max_turns, teacher.name) for t in trajs]
                    append_jsonl(f, records)
                    done.update((r["task_id"], r) for r in records)
                    bar.update(len(records))
        finally:
            if getattr(teacher, "backend", None) is not None:
                teacher.backend.close()  # the teacher's model goes before the student's comes
    return [done[t["id"]] for t in tasks]


def student_round(r: int, tasks: list[dict], pool: list[dict], cfg: TrajConfig, searcher, tmp: Path,
                  echo, student) -> list[dict]:
    """Fine-tune a fresh LoRA of the student on the pool, then every task's trajectory by the
    student alone. `student`: one backend for every round (one engine; a new adapter each)."""
    from transformers import set_seed

    from minisearch.agent.rollout import RolloutConfig, rollout, to_record
    from minisearch.train.sft import run as sft_run

    work = tmp / f"student-{r}"
    write_jsonl(work / "pool.jsonl", pool)
    sft = student_sft(cfg, r, work)
    set_seed(sft.seed)
    student.reset_adapter(sft.seed)
    sft_run(sft, echo, backend=student)
    rcfg = RolloutConfig(max_turns=cfg.teach.max_turns, topk=cfg.teach.topk, words_per_hit=cfg.teach.words_per_hit,
                         temperature=0.0, max_new_tokens=256, max_total_tokens=2048)
    by_id = {t["id"]: t for t in tasks}
    return [to_record(traj, by_id[traj.task_id], cfg.teach.max_turns, f"student-{r}")
            for traj in rollout(tasks, student.generate, searcher.search, student.tokenizer, rcfg,
                                max_context=student.max_context)]


def student_sft(cfg: TrajConfig, r: int, work: Path):
    """The SFT settings of student round `r`."""
    from minisearch.train.sft import SftConfig

    return SftConfig(data=str(work / "pool.jsonl"), model=cfg.model, out=str(work / "sft"),
                     model_backend=cfg.model_backend, max_steps=cfg.student_steps, seed=cfg.seed + r, lr=cfg.student_lr)


def run(cfg: TrajConfig, echo=print) -> Path:
    from minisearch.search import open_searcher

    tasks = list(read_jsonl(cfg.tasks))
    if not tasks:
        raise UserError(f"{cfg.tasks} holds no tasks; make RAMP tasks with `minisearch ramp CORPUS --out DIR`")
    random.Random(cfg.seed).shuffle(tasks)
    by_id = {t["id"]: t for t in tasks}
    first = cfg.limit or len(tasks)
    stats, pool = [], []
    student = None  # loaded at the first student round, after the teacher is closed
    with stage_folder(cfg.out, asdict(cfg), resume=True) as (tmp, counts), open_searcher(cfg.index) as searcher, \
            ExitStack() as owned:
        for r in range(cfg.rounds):
            chunk = tasks[:first] if r == 0 else tasks[first + (r - 1) * cfg.round_tasks:][:cfg.round_tasks]
            if not chunk:
                echo(f"traj: no fresh tasks left for round {r}; stopping")
                break
            if (tmp / f"round-{r}.json").is_file():  # finished before a stop: its pool stands
                row = json.loads((tmp / f"round-{r}.json").read_text())
                pool += read_jsonl(tmp / f"round-{r}.jsonl")
                stats.append(row)
                echo(f"traj round {r} ({row['who']}): complete before the stop, {row['accepted']} accepted")
                continue
            if r > 0 and student is None:
                from minisearch.agent.backends import load_backend
                from minisearch.train.sft import SftConfig

                student = owned.enter_context(load_backend(cfg.model_backend, cfg.model,
                                                           lora_rank=SftConfig.lora_rank))
            records = (teacher_round(chunk, cfg, searcher, tmp / "attempts-0.jsonl", echo) if r == 0
                       else student_round(r, chunk, pool, cfg, searcher, tmp, echo, student))
            accepted, ends = select(records, by_id, cfg.qa_f1)
            pool += accepted
            write_jsonl(tmp / f"round-{r}.jsonl", accepted)
            row = {"round": r, "who": cfg.teacher if r == 0 else f"student-{r}", "tasks": len(chunk),
                   "accepted": len(accepted), "acceptance": round(len(accepted) / len(chunk), 4),
                   "pool": len(pool), "ends": ends, "searches_by_k": searches_by_k(accepted, by_id)}
            stats.append(row)
            (tmp / f"round-{r}.json").write_text(json.dumps(row) + "\n")
            echo(f"traj round {r} ({row['who']}): {row['accepted']}/{row['tasks']} accepted "
                 f"({row['acceptance']:.0%}), pool {row['pool']}")
        if not pool and not cfg.allow_empty:
            raise UserError("no trajectory was accepted; look at the teacher's answers in attempts-0.jsonl "
                            f"of {tmp} (is the index the corpus the tasks came from?)")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        counts.update(rounds=stats, pool=len(pool))
    return Path(cfg.out)
