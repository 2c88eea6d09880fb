"""`minisearch export verl RUN_OR_TASKS --out DIR`: the curriculum and the QA tasks as veRL
RL parquet, with the tool config and reward entry point that go with them.

    DIR/ramp-k1-train.parquet  ramp-k1-val.parquet   ... ramp-k4-*   (one file per curriculum stage)
    DIR/qa-train.parquet       qa-val.parquet                          (downstream QA tasks)
    DIR/search_tool.yaml       veRL's tool config: minisearch's search tool at `minisearch serve`
    DIR/manifest.json          files, row counts, the veRL command of each stage in order

A row, in the layout of veRL's RLHFDataset:

    data_source   "minisearch/ramp-k2" | "minisearch/qa"
    prompt        the chat messages minisearch's own rollout starts from (protocol.task_messages)
    ability       "search"
    reward_model  {"style": "rule", "ground_truth": {"golden_answers", "masks", "masked"}}
    extra_info    {"split", "index", "id", "mask_num", "reward": the recipe's reward weights,
                   "need_tools_kwargs", "tools_kwargs": {"search": {"create_kwargs": {"exclude_ids"}}}}

`exclude_ids` is a RAMP task's own passage, which minisearch's rollout never returns either.
RUN_OR_TASKS is a run folder (its recipe's traj and dapo stages name the task files; the
first dapo stage's reward and rollout settings go along), a stage folder with train.jsonl,
or a tasks JSONL. Validation rows come from the dev.jsonl beside a train.jsonl, else a
seeded hold-out of `val_fraction`.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.agent.protocol import task_messages
from minisearch.errors import UserError
from minisearch.jsonl import read_jsonl
from minisearch.metrics import is_ramp
from minisearch.rundir import stage_folder
from minisearch.settings import Settings, setting
from minisearch.train.curriculum import mask_count
from minisearch.train.rewards import RewardConfig

TOOL_CLASS = "minisearch.export.verl_tool.SearchTool"
TOOL_FORMAT = "minisearch"  # veRL's multi_turn.format: the <search> tag parser in verl_tool


@dataclass
class ExportConfig(Settings):
    source: str = setting(help="A run folder (e.g. runs/demo), a stage folder with train.jsonl, or a tasks JSONL.",
                          arg=True)
    out: str = setting(help="Folder to write.")
    url: str = setting("http://127.0.0.1:8000/retrieve", help="Where `minisearch serve` will answer veRL's search "
                                                               "tool.")
    max_turns: int | None = setting(None, help="Searches allowed per task [default: the run's, else 4].", min=1)
    topk: int | None = setting(None, help="Passages per search [default: the run's, else 3].", min=1)
    words_per_hit: int | None = setting(None, help="Words shown of each passage [default: the run's, else 80].",
                                        min=1)
    val_fraction: float = setting(0.05, help="Held out for validation when no dev.jsonl lies beside the tasks.",
                                  min=0.0)
    seed: int = setting(0, help="Seed of the validation split.")
    reward: RewardConfig = setting(RewardConfig())


def task_files(source: Path, stages: list | None) -> tuple[list[Path], dict]:
    """The train task files of a run folder (its `stages`), stage folder or file, and the run's
    dapo settings."""
    if source.is_file():
        return [source], {}
    if (source / "train.jsonl").is_file():
        return [source / "train.jsonl"], {}
    if stages is None:
        raise UserError(f"{source}: not a tasks JSONL, a folder with train.jsonl, or a run folder with recipe.yaml")
    files = list(dict.fromkeys(Path(s.cfg.tasks) for s in stages if s.kind in ("traj", "dapo")))
    dapo = next((s.cfg for s in stages if s.kind == "dapo"), None)
    settings = {} if dapo is None else {"reward": asdict(dapo.reward), "max_turns": dapo.rollout.max_turns,
                                        "topk": dapo.rollout.topk, "words_per_hit": dapo.rollout.words_per_hit}
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{source}: the run has not made {', '.join(missing)} yet; run its recipe first")
    return files, settings


def split(path: Path, fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation) tasks of a train file: its dev.jsonl sibling, else a seeded hold-out."""
    tasks = list(read_jsonl(path))
    dev = path.with_name("dev.jsonl")
    if path.name == "train.jsonl" and dev.is_file():
        return tasks, list(read_jsonl(dev))
    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    held = set(order[: round(len(tasks) * fraction)])
    return [t for i, t in enumerate(tasks) if i not in held], [t for i, t in enumerate(tasks) if i in held]


def row(task: dict, name: str, split_name: str, index: int, max_turns: int, reward: dict) -> dict:
    meta = task.get("metadata") or {}
    source = meta.get("source_id")
    return {
        "data_source": f"minisearch/{name}",
        "prompt": task_messages(task, max_turns),
        "ability": "search",
        "reward_model": {"style": "rule", "ground_truth": {
            "golden_answers": [str(a) for a in task["golden_answers"]],
            "masks": [str(m) for m in meta.get("masks", [])] if is_ramp(task) else [],
            "masked": str(meta.get("masked", "")) if is_ramp(task) else ""}},
        "extra_info": {"split": split_name, "index": index, "id": str(task["id"]), "mask_num": mask_count(task),
                       "reward": reward, "need_tools_kwargs": True,
                       "tools_kwargs": {"search": {"create_kwargs": {"exclude_ids": [source] if source else []}}}},
    }


def tool_config(url: str, topk: int, words_per_hit: int) -> dict:
    """veRL's tool config (verl.tools.tool_registry reads it): one native tool, `search`."""
    return {"tools": [{
        "class_name": TOOL_CLASS,
        "config": {"type": "native", "retrieval_service_url": url, "topk": topk, "words_per_hit": words_per_hit,
                   "timeout": 30},
        "tool_schema": {"type": "function", "function": {
            "name": "search",
            "description": "Search the encyclopedia; the top passages of each query come back.",
            "parameters": {"type": "object", "required": ["query_list"], "properties": {
                "query_list": {"type": "array", "items": {"type": "string"},
                               "description": "Queries of a few keywords each."}}}}},
    }]}


def write_parquet(path: Path, rows: list[dict]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise UserError("export verl writes parquet through pyarrow: pip install 'minisearch[verl]'") from e
    pq.write_table(pa.Table.from_pylist(rows), path)


def run(cfg: ExportConfig, echo=print, stages: list | None = None) -> Path:
    """Write the parquet files. `stages`: the run's stages when SOURCE is a run folder (the CLI
    reads them from its recipe: the export sits below the pipeline and does not reach up to it)."""
    import yaml

    source = Path(cfg.source)
    if not source.exists():
        raise UserError(f"export verl: {source} does not exist; give a run folder or a tasks JSONL")
    files, settings = task_files(source, stages)
    reward = settings.get("reward") or asdict(cfg.reward)
    max_turns = cfg.max_turns or settings.get("max_turns", 4)
    topk, words = cfg.topk or settings.get("topk", 3), cfg.words_per_hit or settings.get("words_per_hit", 80)
    groups: dict[str, dict[str, list[dict]]] = {}
    for path in files:
        for split_name, tasks in zip(("train", "val"), split(path, cfg.val_fraction, cfg.seed)):
            for task in tasks:
                name = f"ramp-k{mask_count(task)}" if is_ramp(task) else "qa"
                groups.setdefault(name, {"train": [], "val": []})[split_name].append(task)
    if not groups:
        raise UserError(f"export verl: no tasks in {', '.join(map(str, files))}")
    names = sorted(n for n in groups if n != "qa") + (["qa"] if "qa" in groups else [])
    manifest = {"source": str(source), "url": cfg.url, "max_turns": max_turns, "reward": reward, "stages": []}
    with stage_folder(cfg.out, {**asdict(cfg), "files": [str(f) for f in files]}) as (tmp, counts):
        for name in names:
            entry = {"name": name}
            for split_name in ("train", "val"):
                rows = [row(t, name, split_name, i, max_turns, reward) for i, t in enumerate(groups[name][split_name])]
                if rows:
                    write_parquet(tmp / f"{name}-{split_name}.parquet", rows)
                    entry[split_name] = f"{name}-{split_name}.parquet"
                entry[f"{split_name}_rows"] = len(rows)
            manifest["stages"].append(entry)
            echo(f"{name}: {entry['train_rows']} train, {entry['val_rows']} validation tasks")
        (tmp / "search_tool.yaml").write_text(yaml.safe_dump(tool_config(cfg.url, topk, words), sort_keys=False))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        counts.update({s["name"]: s["train_rows"] + s["val_rows"] for s in manifest["stages"]})
    echo(f"wrote {cfg.out}: serve the index (`minisearch serve INDEX`), then train each stage in order with "
         "veRL (README, \"Scale out\")")
    return Path(cfg.out)
