"""How big a plan's inputs are without running anything: a JSONL's lines and words, a model's parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

from minisearch.errors import UserError


def count_file(path: Path) -> dict:
    """Lines of a JSONL (or a stage folder's main file) and the words of its first rows."""
    if path.is_dir():
        for name in ("passages.jsonl", "tasks.jsonl", "train.jsonl"):
            if (path / name).is_file():
                return count_file(path / name)
        return {}
    if not path.is_file():
        return {}
    words, lines, read = [], 0, 0
    with path.open("rb") as f:
        for lines, raw in enumerate(f, 1):
            read += len(raw)
            if lines <= 1000:
                try:
                    row = json.loads(raw)
                except ValueError:  # not JSONL: count words as text
                    row = {"contents": raw.decode("utf-8", "replace")}
                words.append(len(str(row.get("contents", row.get("question", ""))).split()))
            elif read > 2e8:  # a big file: the rest estimated from the bytes a line so far
                lines = round(path.stat().st_size / (read / lines))
                break
    avg = sum(words) / len(words) if words else 100
    return {"passages": lines, "tasks": lines, "words": avg}


SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([BM])\b", re.I)


def model_params(name: str) -> float:
    """Parameters of a model: from its folder's config.json, else from its name (`Qwen2.5-1.5B`)."""
    config = Path(name) / "config.json"
    if config.is_file():
        c = json.loads(config.read_text())
        h, layers, vocab = c.get("hidden_size", 0), c.get("num_hidden_layers", 0), c.get("vocab_size", 0)
        inter = c.get("intermediate_size", 4 * h)
        return layers * (4 * h * h + 3 * h * inter) + vocab * h
    found = SIZE.search(name.replace("_", "-").split("/")[-1])
    if not found:
        raise UserError(f"cannot tell the size of model {name!r} for the plan: give a folder with config.json "
                        "or a name with its size (Qwen2.5-1.5B-Instruct)")
    return float(found.group(1)) * (1e9 if found.group(2).upper() == "B" else 1e6)
