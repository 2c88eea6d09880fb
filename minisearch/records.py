"""The record formats that travel between stages (docs/formats.md).

A passage is ``{"id": str, "contents": "Title\\ntext"}`` (the Search-R1 / FlashRAG form).
A QA task is ``{"id", "question", "golden_answers": [str, ...], "metadata": {...}}``; a RAMP task's
metadata holds `masked` (its paragraph with each cut span replaced by MASK) and `masks` (the spans).

>>> p = make_passage("p1", "Velkaran", "Velkaran is a river.")
>>> p
{'id': 'p1', 'contents': 'Velkaran\\nVelkaran is a river.'}
>>> split_contents(p["contents"])
('Velkaran', 'Velkaran is a river.')
>>> split_contents("no title line")
('', 'no title line')
"""

from __future__ import annotations

import json
from pathlib import Path

MASK = "[mask]"  # where a RAMP task cut a span: the prompt shows it, scoring reads the answer at it

TINY_INFO = "tiny_model.json"  # in a model folder: `minisearch init` built it (its settings)


def tiny_model_info(model: str | Path) -> dict:
    """What `minisearch init` recorded about a model folder ({} for any other model): the
    backend and the card read it to treat a model built here (no pretrained embeddings) apart."""
    path = Path(model) / TINY_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def make_passage(pid: str, title: str, text: str) -> dict:
    """A passage record; the title is one line (newlines in it become spaces)."""
    title = " ".join(title.split())
    return {"id": pid, "contents": f"{title}\n{text.strip()}"}


def split_contents(contents: str) -> tuple[str, str]:
    """(title, text) of a passage's contents; a one-line contents has no title."""
    title, sep, text = contents.partition("\n")
    if not sep:
        return "", contents.strip()
    return title.strip(), text.strip()


def passage_titles(passages) -> dict[str, str]:
    """Passage id -> title, for code that names what a passage is about."""
    return {p["id"]: split_contents(p["contents"])[0] for p in passages}


def make_qa(qid: str, question: str, answers: list[str], **metadata) -> dict:
    """A QA task record in the FlashRAG form."""
    return {"id": qid, "question": question, "golden_answers": list(answers), "metadata": metadata}
