"""The eval stage: every model of a run (base, after each training stage) on every held-out set.

    cfg = EvalConfig(model="runs/demo/warmup", index="runs/demo/index", out="runs/demo/eval",
                     models={"base": None, "sft": "runs/demo/sft/adapter"},
                     sets={"ramp-dev": "runs/demo/ramp/dev.jsonl", "toy-qa": "runs/demo/world/qa/dev.jsonl"})

Writes `metrics.json` (the setting: corpus, retriever, top-k, turn limit; one row per model
and set), `samples.jsonl` (every answer) and `table.md`. The baselines of the paper are
settings of the base model: Agent-PE is the prompted agent with no training (the `base`
row), RAG-PE retrieves once with the question and answers (`rag-pe` in `baselines`). Each
(model, set) cell is saved when measured, so a killed eval resumes where it stopped; its
numbers go to the run's trackers as eval/MODEL/SET/METRIC (`minisearch.steplog`).
Greedy decoding; RAMP sets report span accuracy, QA sets token recall (the paper's metric),
EM and F1.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from minisearch.agent.backends import BACKENDS, Completion
from minisearch.agent.protocol import MAX_QUERY_CHARS, write_turn
from minisearch.agent.rollout import RolloutConfig, prompt_ids
from minisearch.eval.evaluate import evaluate
from minisearch.eval.qaset import load_set
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.records import MASK
from minisearch.rundir import stage_folder
from minisearch.settings import SettingError, Settings, setting
from minisearch.steplog import StepLog, numbers

BASELINES = ("rag-pe",)
# The paper's Table 2: Qwen2.5-1.5B, RAMP RL then downstream RL, token recall x 100 per set and
# averaged over the six.
PAPER_1_5B_RLRL = {"hotpotqa": 71.02, "fanoutqa": 49.73, "musique": 40.59, "2wikimultihopqa": 76.03,
                   "bamboogle": 73.60, "freshqa": 81.08}
PAPER_1_5B_RLRL_AVERAGE = 65.34


@dataclass
class EvalConfig(Settings):
    model: str = setting(help="Base model folder or Hugging Face id.", path=True)
    index: str = setting(help="The index the agent searches (a folder or a server URL).", path=True)
    out: str = setting(help="Stage folder to write.")
    sets: dict = setting({}, flag="--set", path=True,
                         help="A set to score, NAME=SET: a JSONL file, hotpotqa, 2wikimultihopqa, musique, bamboogle, "
                              "fanoutqa, or freshqa:CSV.")
    models: dict = setting({"base": None}, flag="--adapter", path=True,
                           help="A row of the table, LABEL=ADAPTER_DIR (an empty dir: the base model).")
    baselines: list = setting(list(BASELINES), choices=BASELINES,
                              help="Baselines of the base model beside the prompted agent (Agent-PE); '' for none.")
    limit: int = setting(64, help="Tasks per set (the first ones).", min=1)
    model_backend: str = setting("cpu", help="Where the model runs.", choices=BACKENDS, was="backend")
    corpus: str = setting("", help="The corpus named in the table [default: the index's source].")
    rollout: RolloutConfig = setting(RolloutConfig(temperature=0.0))

    def validate(self):
        if not self.sets:
            raise SettingError("no sets to score; name them under `sets:` (name: JSONL path or a set name) "
                               "or with --set NAME=SET")


def rag_pe(generate, tokenizer, tasks: list[dict], max_turns: int):
    """A generator that writes the first turn itself, a search for the question as asked
    (RAG-PE: retrieve once, then answer); the model writes every later turn."""
    first = {tuple(prompt_ids(tokenizer, t, max_turns)[0]): rag_query(t) for t in tasks}

    def gen(prompts, **kw):
        outs = generate(prompts, **kw) if any(tuple(p) not in first for p in prompts) else []
        model_outs = iter(outs)
        result = []
        for p in prompts:
            question = first.get(tuple(p))
            if question is None:
                result.append(next(model_outs))
                continue
            text = write_turn("search", question)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            result.append([Completion(ids, [0.0] * len(ids), text, "stop")])
        return result
    return gen


def run(cfg: EvalConfig, echo=print) -> Path:
    from tqdm import tqdm

    from minisearch.agent.backends import load_backend
    from minisearch.search import open_searcher, read_meta

    sets = {name: load_set(spec, cfg.limit) for name, spec in cfg.sets.items()}
    meta = read_meta(cfg.index)
    setting = {"model": cfg.model, "corpus": cfg.corpus or meta.get("source", ""), "passages": meta.get("passages"),
               "retriever": f"{meta['backend']} BM25", "topk": cfg.rollout.topk, "max_turns": cfg.rollout.max_turns,
               "words_per_hit": cfg.rollout.words_per_hit}
    rows, cells = [], []
    backend, current = None, None  # one model for every adapter, loaded only if a cell is still to measure
    with stage_folder(cfg.out, asdict(cfg), resume=True) as (tmp, counts), open_searcher(cfg.index) as searcher, \
            ExitStack() as owned, StepLog(cfg.out, config=asdict(cfg)) as log:
        (tmp / "cells").mkdir(exist_ok=True)
        rag_rows = sum(a is None for a in cfg.models.values()) if "rag-pe" in cfg.baselines else 0
        bar = owned.enter_context(tqdm(total=(len(cfg.models) + rag_rows) * len(sets), desc="eval", unit=" cells"))
        for label, adapter in cfg.models.items():
            rag = adapter is None and "rag-pe" in cfg.baselines
            for row, retrieve_once in ([(f"RAG-PE ({label})", True)] if rag else []) + [(label, False)]:
                for name, tasks in sets.items():
                    path = tmp / "cells" / f"{_slug(row)}--{_slug(name)}.json"
                    if not path.is_file():
                        if backend is None:  # loaded with an adapter, so the gpu backend takes its LoRA rank
                            current = next((a for a in cfg.models.values() if a), None)
                            backend = owned.enter_context(load_backend(cfg.model_backend, cfg.model, current))
                        if adapter != current:
                            backend.use_adapter(adapter)  # same engine, a new LoRA request
                            current = adapter
                        metrics, samples = _measure(backend, searcher, tasks, cfg.rollout, retrieve_once)
                        write_jsonl(path.with_suffix(".jsonl"), [{"model": row, "set": name, **s} for s in samples])
                        path.write_text(json.dumps(metrics) + "\n")
                    metrics = json.loads(path.read_text())
                    rows.append({"model": row, "set": name, **metrics})
                    log.scalars(numbers(metrics, f"eval/{_slug(row)}/{_slug(name)}/"), 0)
                    cells.append(path)
                    bar.update()
                    shown = {k: v for k, v in metrics.items() if k != "by_depth"}  # by depth: in the table
                    echo(f"eval {row} on {name}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        write_jsonl(tmp / "samples.jsonl", [s for p in cells for s in read_jsonl(p.with_suffix(".jsonl"))])
        result = {"setting": setting, "rows": rows}
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (tmp / "table.md").write_text(table(result) + "\n")
        counts.update(rows=len(rows), sets=list(sets), models=list(dict.fromkeys(r["model"] for r in rows)))
    echo(table(result))
    return Path(cfg.out)


def rag_query(task: dict) -> str:
    """RAG-PE's one query: the question as asked; for a RAMP task its title and paragraph
    without the masks (the task text also holds the instructions, tags included).

    >>> rag_query({"question": "Who?", "metadata": {"title": "A", "masked": "A met [mask]."}})
    'A A met .'
    """
    meta = task.get("metadata", {})
    text = f"{meta.get('title', '')} {meta['masked'].replace(MASK, '')}" if "masked" in meta else task["question"]
    return " ".join(text.split())[:MAX_QUERY_CHARS]


def _measure(backend, searcher, tasks: list[dict], rollout: RolloutConfig, retrieve_once: bool):
    """One cell: greedy, one sample per task; RAG-PE gets one search, written for it."""
    if not retrieve_once:
        return evaluate(backend, searcher, tasks, replace(rollout, group=1))
    cfg = replace(rollout, group=1, max_turns=1)
    return evaluate(backend, searcher, tasks, cfg, rag_pe(backend.generate, backend.tokenizer, tasks, cfg.max_turns))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def table(result: dict, paper: bool = True) -> str:
    """The eval table in markdown: one line per model and set, the setting named above it
    (and, `paper`, the paper's figures beside ours where the sets are its).
    `exact` is span accuracy on RAMP sets and EM on QA sets; `recall` is token recall (of
    each masked span on RAMP sets, of the gold answer on QA sets: the paper's metric)."""
    s = result["setting"]
    lines = [f"corpus: {s['corpus']} ({s['passages']} passages), retriever: {s['retriever']}, top-k {s['topk']}, "
             f"at most {s['max_turns']} searches, greedy decoding", "",
             "| model | set | n | exact | recall | F1 | format ok | searches |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        exact, recall = (r.get("span_acc"), r.get("span_recall")) if "span_acc" in r else (r.get("em"), r.get("recall"))
        lines.append(f"| {r['model']} | {r['set']} | {r['n']} | {_num(exact)} | {_num(recall)} | {_num(r.get('f1'))} | "
                     f"{r['format_ok']:.2f} | {r['searches']:.2f} |")
    lines += depth_rows(result["rows"])
    lines += paper_rows(result["rows"]) if paper else []
    return "\n".join(lines)


def depth_rows(rows: list[dict]) -> list[str]:
    """The same cells by depth: RAMP by mask count and by the searches its plan needs (span
    accuracy / searches per episode / plan queries written), QA by question type (EM)."""
    rows = [r for r in rows if r.get("by_depth")]
    if not rows:
        return []
    keys = list(dict.fromkeys(k for r in rows for k in r["by_depth"]))
    lines = ["", "By depth: exact / searches per episode (RAMP: k masks, searches the plan needs; QA: question type; "
             "n in brackets); plan queries: the share of the plans' queries written word for word:", "",
             "| model | set | " + " | ".join(keys) + " | plan queries |", "|---" * (len(keys) + 3) + "|"]
    for r in rows:
        cells = []
        for key in keys:
            d = r["by_depth"].get(key)
            exact = None if d is None else d.get("span_acc", d.get("em"))
            cells.append("-" if d is None else f"{_num(exact)} / {d['searches']:.2f} ({d['n']})")
        lines.append(f"| {r['model']} | {r['set']} | " + " | ".join(cells) + f" | {_num(r.get('plan_queries'))} |")
    return lines


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def paper_rows(rows: list[dict]) -> list[str]:
    """The paper's figures beside ours for those of its six sets we scored (recall x 100)."""
    sets = [n for n in PAPER_1_5B_RLRL if any(r["set"] == n and "recall" in r for r in rows)]
    if not sets:
        return []
    models = list(dict.fromkeys(r["model"] for r in rows if r["set"] in sets))
    recall = {(r["model"], r["set"]): r.get("recall") for r in rows}

    def cell(value):
        return "-" if value is None else f"{100 * value:.2f}"
    lines = ["", "Token recall x 100 beside the paper's (Table 2; its SFT data came from web search, so FreshQA "
             "in particular is not comparable):", "",
             "| set | paper: Qwen2.5-1.5B RL+RL | " + " | ".join(models) + " |", "|---" * (len(models) + 2) + "|"]
    lines += [f"| {n} | {PAPER_1_5B_RLRL[n]:.2f} | " + " | ".join(cell(recall.get((m, n))) for m in models) + " |"
              for n in sets]
    if len(sets) == len(PAPER_1_5B_RLRL):
        means = [[recall.get((m, n)) for n in sets] for m in models]
        lines.append(f"| average | {PAPER_1_5B_RLRL_AVERAGE:.2f} | " + " | ".join(
            cell(None if None in v else sum(v) / len(v)) for v in means) + " |")
    return lines
