"""Helpers the tests import (`from helpers import RECIPES`): repository paths, small hand-written
passages, the small run's recipe, reading a stage's adapter, whether a scripted model has seen its
search results, an agent's greedy trajectories, and the one way to run a recipe in a child process.
Fixtures live in conftest.py, which imports from here too; repository files are opened from ROOT,
never from the working directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from minisearch.records import make_passage

ROOT = Path(__file__).resolve().parents[1]  # the repository
RECIPES = ROOT / "recipes"
REALTEXT = ROOT / "data" / "wiki-summaries.jsonl"

PASSAGES = [
    make_passage("p1", "Velkaran River", "The Velkaran River is 812 km long and flows through Ostrivel."),
    make_passage("p2", "Ostrivel", "Ostrivel is a city of 1,204,330 people on the Velkaran River."),
    make_passage("p3", "Quorvelle Dantrisk", "Quorvelle Dantrisk was born on 14 March 1873 in Ostrivel. "
                 "She founded Vethmora Holdings."),
    make_passage("p4", "Vethmora Holdings", "Vethmora Holdings is a shipping company founded in 1901 by "
                 "Quorvelle Dantrisk, with its headquarters in Ostrivel."),
    make_passage("p5", "Zimbrathe", "Zimbrathe is a mountain village known for its glass works."),
    make_passage("p6", "Glass works of Zimbrathe", "The glass works employ 340 people; "
                 "their blue bottles are sold in Ostrivel."),
]

# A run with every stage that logs per step or trains an adapter (warm-up, sft, dapo, eval), each
# as small as it goes; `finished_run` runs it once for the live-metrics, card and merge tests.
SMALL_RUN = """
    name: small
    seed: 0
    stages:
      world: {kind: toyworld, size: 80}
      corpus: {source: world/passages.jsonl}
      index: {source: corpus}
      warmup: {model: TINY, corpus: corpus, steps: 3, batch_size: 4, seq_len: 32}
      ramp: {corpus: corpus, index: index, dev_fraction: 0.1}
      traj: {tasks: ramp/train.jsonl, index: index, model: warmup, limit: 24, teach: {answer_form: spans}}
      sft: {data: traj, model: warmup, max_steps: 3, batch_size: 4, lr: 5.0e-3, grad_checkpoint: false,
            eval_tasks: ramp/dev.jsonl, index: index, eval_limit: 2}
      dapo: {tasks: ramp/train.jsonl, index: index, model: warmup, adapter: sft/adapter, steps: 2, batch_tasks: 2,
             group: 2, max_gen_rounds: 1, lr: 1.0e-3, grad_checkpoint: false, eval_tasks: ramp/dev.jsonl,
             eval_limit: 2}
      eval: {model: warmup, index: index, limit: 3, baselines: [],
             models: {base: null, ramp-sft: sft/adapter, ramp-dapo: dapo/adapter},
             sets: {ramp-dev: ramp/dev.jsonl, toy-qa: world/qa/dev.jsonl}}
"""


def small_recipe(folder: Path, tiny_model: Path) -> Path:
    """SMALL_RUN as a recipe file in `folder`, on the tiny model."""
    import textwrap

    path = folder / "small.yaml"
    path.write_text(textwrap.dedent(SMALL_RUN).replace("TINY", str(tiny_model)))
    return path


def adapter_weights(stage: Path) -> dict:
    """A training stage's saved adapter, tensors by name (stage / adapter / adapter_model.safetensors)."""
    from safetensors.torch import load_file

    return load_file(str(Path(stage) / "adapter" / "adapter_model.safetensors"))


def same_weights(a: dict, b: dict, atol: float) -> bool:
    """Whether two adapters (as `adapter_weights` reads them) hold the same tensors, within `atol`."""
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def results_shown(context: str) -> bool:
    """Whether the assistant's part of a context already holds search results: a scripted
    model searches first and answers once they are there. (The system prompt names the
    <information> tag too, so counting it in the whole context proves nothing.)"""
    return "<information>" in context.rsplit("<|im_start|>assistant", 1)[-1]


def greedy_trajectories(generate, tokenizer, searcher, tasks: list[dict], max_new_tokens: int = 48) -> list[tuple]:
    """Each task's whole trajectory through the turn loop, greedy, as (token ids, end, answer):
    what two ways of running one agent (base + adapter, merged, vLLM) must agree on."""
    from minisearch.agent.rollout import RolloutConfig, rollout

    cfg = RolloutConfig(temperature=0.0, max_new_tokens=max_new_tokens, max_total_tokens=1024)
    return [(t.ids, t.end, t.answer) for t in rollout(tasks, generate, searcher.search, tokenizer, cfg)]


class Ran(NamedTuple):
    """A recipe run in a child process: its exit status (negative: killed by that signal) and its
    output, stdout and stderr as one stream."""

    code: int
    log: str


def run_recipe_process(recipe: Path, out: Path, sets: list[str] = (), kill_at: str | None = None) -> Ran:
    """`python -m minisearch.cli run RECIPE --set out=OUT --set ...` in a child process (its own
    session, unbuffered); with `kill_at`, SIGKILL the whole session when a line containing it appears."""
    cmd = [sys.executable, "-m", "minisearch.cli", "run", str(recipe), "--set", f"out={out}"]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if kill_at and kill_at in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    return Ran(proc.returncode, "".join(seen))
