"""Answering questions by searching: `minisearch chat` (a REPL) and `minisearch ask` (one shot).

    minisearch chat --run runs/demo                       # the run's model, adapter and index
    minisearch chat --index ./notes.idx --model Qwen/Qwen2.5-1.5B-Instruct
    minisearch ask "Who founded Vethmora Holdings?" --run runs/demo --json

Each search query and the titles it found are shown as they happen, then the answer.
History is not carried into the next question unless `--keep-history`. Ctrl-C stops the
current answer, Ctrl-D (or `exit`) leaves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from minisearch.agent.backends import BACKENDS
from minisearch.agent.protocol import parse_turn
from minisearch.agent.rollout import RolloutConfig, Segment, Trajectory, rollout
from minisearch.errors import UserError
from minisearch.settings import Settings, setting

ADAPTER_STAGES = ("dapo", "sft")  # the newest trained adapter of a run wins


@dataclass
class ChatConfig(Settings):
    index: str = setting(help="Index folder or search server URL [default: the run's].")
    model: str = setting(help="Model folder or Hugging Face id [default: the run's].")
    adapter: str | None = setting(None, help="A LoRA adapter [default: the run's newest].")
    model_backend: str = setting("cpu", help="Where the model runs.", choices=BACKENDS, was="backend")
    max_turns: int = setting(4, help="Searches allowed per question.", min=1)
    topk: int = setting(3, help="Passages per search (with --run and no -k: the run's own).", min=1)
    max_new_tokens: int = setting(256, help="Tokens per model turn.", min=1)
    temperature: float = setting(0.0, help="Sampling temperature (0: greedy).", min=0.0)
    show_thoughts: bool = setting(False, help="Print the model's <think> text too.")
    keep_history: bool = setting(False, help="Carry earlier questions and answers into the next (chat).")


def resolve(run: str | None, index: str | None, model: str | None,
            topk: int | None = None, planned: dict | None = None) -> tuple[str, str, str | None, int]:
    """(index, model, adapter, passages per search) from a run folder and/or explicit values;
    `planned`: what the run's recipe makes, for a run folder without run.json yet."""
    adapter = None
    if run:
        root = Path(run)
        if not root.is_dir():
            raise UserError(f"no run folder at {run}; make one with `make demo` or `minisearch run RECIPE`")
        made = json.loads((root / "run.json").read_text()) if (root / "run.json").is_file() else planned or {}
        made = {k: _from_run(root, v) for k, v in made.items()}
        index = index or made.get("index") or str(root / "index")
        model = model or made.get("model") or str(root / "model")
        adapter = made.get("adapter") or next((str(root / s / "adapter") for s in ADAPTER_STAGES
                                               if (root / s / "adapter").is_dir()), None)
        topk = topk or made.get("topk")
    if not index or not model:
        raise UserError("say what to search and with which model: --run RUN, or --index DIR and --model PATH_OR_ID")
    return index, model, adapter, topk or 3


def _from_run(root: Path, value):
    """A run.json path: relative to the run folder when it lies there (else as written: a
    model id, or a path from an older run.json, relative to where the run was made)."""
    if isinstance(value, str) and value and (root / value).exists():
        return str(root / value)
    return value


class Agent:
    """A model, an index and the rollout loop, for one question at a time."""

    def __init__(self, cfg: ChatConfig):
        from minisearch.search import open_searcher

        self.cfg = cfg
        self.searcher = open_searcher(cfg.index)
        from minisearch.agent.backends import load_backend

        self.backend = load_backend(cfg.model_backend, cfg.model, cfg.adapter)
        self.generate = self.backend.generate  # replaceable: tests script it
        self.found: list[list[str]] = []  # titles per search, in order
        self.history: list[tuple[str, str]] = []

    def _search(self, queries, k, exclude_ids=None):
        hits = self.searcher.search(queries, k=k, exclude_ids=exclude_ids)
        self.found += [[h.title for h in found] for found in hits]
        return hits

    def ask(self, question: str, on_segment=None) -> Trajectory:
        self.found = []
        text = question
        if self.cfg.keep_history and self.history:
            earlier = "\n".join(f"Q: {q}\nA: {a}" for q, a in self.history)
            text = f"Earlier in this conversation:\n{earlier}\n\nNow: {question}"
        task = {"id": "chat", "question": text, "golden_answers": [], "metadata": {}}
        cfg = RolloutConfig(max_turns=self.cfg.max_turns, topk=self.cfg.topk, max_new_tokens=self.cfg.max_new_tokens,
                            max_total_tokens=4096, temperature=self.cfg.temperature)
        traj = rollout([task], self.generate, self._search, self.backend.tokenizer, cfg, on_segment,
                       max_context=getattr(self.backend, "max_context", None))[0]
        if traj.answer is not None:
            self.history.append((question, traj.answer))
        return traj


def summary(question: str, traj: Trajectory, found: list[list[str]]) -> dict:
    """What `ask --json` prints."""
    return {"question": question, "answer": traj.answer, "end": traj.end,
            "searches": [{"query": q, "titles": t} for q, t in zip(traj.queries, found)]}


def printer(agent: Agent, echo=click.echo):
    """An on_segment callback that shows searches, found titles, thoughts and the answer."""
    def show(traj: Trajectory, segment: Segment) -> None:
        if segment.who == "tool":
            echo("    found: " + (" · ".join(agent.found[-1]) if agent.found else "nothing"))
            return
        turn = parse_turn(segment.text)
        if agent.cfg.show_thoughts and turn.thought:
            echo(f"  thought: {turn.thought}")
        if turn.kind == "search":
            echo(f"  search: {turn.query}")
        elif turn.kind == "answer":
            echo(f"  answer: {turn.answer}")
    return show


def repl(agent: Agent, read=input, echo=click.echo) -> None:
    if read is input:  # interactive: Ctrl-C must reach us even when our parent ignored SIGINT
        import signal  # (a shell without job control starts background jobs that way)

        signal.signal(signal.SIGINT, signal.default_int_handler)
    echo("Ask a question (Ctrl-C stops an answer, Ctrl-D leaves).")
    while True:
        try:
            question = read("? ").strip()
        except EOFError:
            echo("")
            return
        except KeyboardInterrupt:
            echo("")
            continue
        if question in {"exit", "quit"}:
            return
        if not question:
            continue
        try:
            traj = agent.ask(question, printer(agent, echo))
        except KeyboardInterrupt:
            echo("  (stopped)")
            continue
        if traj.answer is None:
            echo(f"  no answer ({traj.end})")
