"""QA sets for evaluation, as FlashRAG tasks `{"id", "question", "golden_answers", "metadata"}`.

    load_set("runs/demo/world/qa/dev.jsonl")   # a local JSONL, always accepted (QA or RAMP tasks)
    load_set("hotpotqa")                       # the paper's sets by name, through `datasets`
    load_set("hotpotqa:train")                 # another split of a FlashRAG set
    load_set("freshqa:FreshQA_v11.csv")        # FreshQA's published CSV (question, answer_0..answer_9)

The paper's six sets: HotpotQA, 2WikiMultiHopQA, Musique and Bamboogle come from FlashRAG's
copy on the Hugging Face hub (`RUC-NLPIR/FlashRAG_datasets`), FanOutQA from its own PyPI
package (`fanoutqa`, which ships the dev set), FreshQA from the CSV its authors publish and
update (no stable hub copy; pass the file). Downloads are cached under
`~/.cache/minisearch/qa/NAME-SPLIT.jsonl`; offline, a set that is not cached is an error
that says how to get it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl, write_jsonl
from minisearch.rundir import stage_folder
from minisearch.settings import Settings, setting

FLASHRAG = "RUC-NLPIR/FlashRAG_datasets"
# name -> (FlashRAG config, split the paper-style evaluation uses)
FLASHRAG_SETS = {"hotpotqa": ("hotpotqa", "dev"), "2wikimultihopqa": ("2wikimultihopqa", "dev"),
                 "musique": ("musique", "dev"), "bamboogle": ("bamboogle", "test")}
PAPER_SETS = ("hotpotqa", "fanoutqa", "musique", "2wikimultihopqa", "bamboogle", "freshqa")


def cache_dir() -> Path:
    return Path(os.environ.get("MINISEARCH_CACHE", Path.home() / ".cache" / "minisearch")) / "qa"


def load_set(spec: str, limit: int | None = None) -> list[dict]:
    """The tasks of one set: a JSONL path, `freshqa:CSV`, or a name from PAPER_SETS."""
    name, _, split = spec.partition(":")
    if name == "freshqa" and split:
        rows = freshqa_csv(split)
    elif name == "fanoutqa":
        if split not in ("", "dev"):
            raise UserError(f"{spec}: FanOutQA's answers are published for its dev split only")
        rows = _cached(name, "dev")
    elif name in FLASHRAG_SETS:
        rows = _cached(name, split or FLASHRAG_SETS[name][1])
    elif spec == "freshqa":
        raise UserError("FreshQA has no stable hub copy: download the CSV its authors publish "
                        "(github.com/freshllms/freshqa) and name it as freshqa:PATH/TO/FreshQA.csv")
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"no QA set {spec!r}: give a JSONL file of FlashRAG tasks or one of "
                            f"{', '.join(PAPER_SETS)}")
        rows = list(read_jsonl(path))
    for i, row in enumerate(rows, 1):
        if not isinstance(row.get("question"), str) or not row.get("golden_answers"):
            raise UserError(f"{spec}: task {i} needs a `question` and a non-empty `golden_answers` list")
        row.setdefault("id", f"{Path(spec).stem}-{i}")
    return rows[:limit] if limit else rows


def set_needs(spec: str, why: str) -> list:
    """What loading the set `spec` needs (`minisearch.needs`), as `load_set` would: a set in the
    cache needs nothing; else FanOutQA its package (which ships the dev set), a FlashRAG set
    the datasets package and the hub; a CSV or JSONL its file."""
    from minisearch.needs import HF_EXTRA, Need, file, package

    name, _, split = spec.partition(":")
    if name == "freshqa":
        return [file(split or spec, why, "download FreshQA's CSV (github.com/freshllms/freshqa) and name it as "
                                         "freshqa:PATH/TO/FreshQA.csv")]
    if name == "fanoutqa" or name in FLASHRAG_SETS:
        split = "dev" if name == "fanoutqa" else split or FLASHRAG_SETS[name][1]
        if (cache_dir() / f"{name}-{split}.jsonl").is_file():
            return []
        if name == "fanoutqa":
            return [package("fanoutqa", why, HF_EXTRA)]
        return [package("datasets", why, HF_EXTRA), Need("dataset", f"{FLASHRAG} ({name})", why)]
    return [file(spec, why, f"give a JSONL file of FlashRAG tasks or one of {', '.join(PAPER_SETS)}")]


def _cached(name: str, split: str) -> list[dict]:
    path = cache_dir() / f"{name}-{split}.jsonl"
    if path.is_file():
        return list(read_jsonl(path))
    try:
        rows = fanoutqa_dev() if name == "fanoutqa" else flashrag(name, split)
    except ImportError as e:
        raise UserError(f"loading {name} needs `pip install -e .[hf]` ({e.name} is missing)") from e
    except Exception as e:  # the hub's errors vary by version; all mean "could not fetch"
        raise UserError(f"could not download {name} ({type(e).__name__}: {e}). Offline? Put the set as "
                        f"FlashRAG JSONL at {path}, or pass a local JSONL instead of the name") from e
    write_jsonl(path, rows)
    return rows


def flashrag(name: str, split: str) -> list[dict]:
    from datasets import load_dataset

    config = FLASHRAG_SETS[name][0]
    data = load_dataset(FLASHRAG, config, split=split)
    return [{"id": str(r.get("id", i)), "question": r["question"], "golden_answers": list(r["golden_answers"]),
             "metadata": {"set": name}} for i, r in enumerate(data)]


def fanoutqa_dev() -> list[dict]:
    import fanoutqa

    return [{"id": q.id, "question": q.question, "golden_answers": [flatten_answer(q.answer)],
             "metadata": {"set": "fanoutqa"}} for q in fanoutqa.load_dev()]


def flatten_answer(answer) -> str:
    """FanOutQA answers are values, lists or maps; recall is taken over all their leaves.

    >>> flatten_answer({"a": 1, "b": ["x", "y"]})
    '1, x, y'
    """
    if isinstance(answer, dict):
        return ", ".join(flatten_answer(v) for v in answer.values())
    if isinstance(answer, (list, tuple)):
        return ", ".join(flatten_answer(v) for v in answer)
    return str(answer)


def freshqa_csv(path: str) -> list[dict]:
    """FreshQA's CSV: a `question` column and answers in `answer_0` .. `answer_9`; the file
    may start with note rows before its header."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no FreshQA CSV at {path}")
    lines = p.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if "question" in next(csv.reader([line]), [])), None)
    if start is None:
        raise UserError(f"{path}: no header row with a `question` column")
    rows = []
    for i, r in enumerate(csv.DictReader(lines[start:]), start + 2):
        golds = [r[k].strip() for k in sorted(r) if k and k.startswith("answer_") and r[k] and r[k].strip()]
        if r.get("question") and golds:
            rows.append({"id": r.get("id") or f"freshqa-{i}", "question": r["question"], "golden_answers": golds,
                         "metadata": {"set": "freshqa", "split": r.get("split", "")}})
    return rows


@dataclass
class QaSetConfig(Settings):
    out: str = setting(help="Stage folder to write.")
    set: str = setting(help="A set name (hotpotqa, hotpotqa:train, ...), freshqa:CSV or a JSONL path.", path=True)
    limit: int | None = setting(None, help="The first N tasks [default: all].", min=1)


def run(cfg: QaSetConfig, echo=print) -> Path:
    """A QA set as a stage folder (`tasks.jsonl`), for the traj, sft and dapo stages to read."""
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        rows = load_set(cfg.set, cfg.limit)
        write_jsonl(tmp / "tasks.jsonl", rows)
        counts.update(tasks=len(rows))
    echo(f"qaset: {len(rows)} tasks from {cfg.set} in {cfg.out}")
    return Path(cfg.out)
