"""Shared fixtures: small hand-written passages, and real text when it has been fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from minisearch.jsonl import read_jsonl
from minisearch.records import make_passage

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def passages() -> list[dict]:
    return [dict(p) for p in PASSAGES]


@pytest.fixture(scope="session")
def realtext() -> list[dict]:
    """~10k Wikipedia lead summaries (`make data`); the test skips when they are absent."""
    if not REALTEXT.is_file():
        pytest.skip("real text not fetched: run `make data`")
    return list(read_jsonl(REALTEXT))


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """A run folder with a 200-entity toy world, its Whoosh index and an untrained tiny model."""
    pytest.importorskip("transformers")
    from minisearch.agent.protocol import TAGS
    from minisearch.data.toyworld import build_world
    from minisearch.search import build_index
    from minisearch.tiny.model import TinyModelConfig, init_model

    root = tmp_path_factory.mktemp("toyrun")
    world = build_world(200, seed=4)
    build_index(world.passages, root / "index")
    init_model(world.passages, root / "model", TAGS, TinyModelConfig(vocab_size=800))
    return root, world


@pytest.fixture(scope="session")
def toy_env(toy_run):
    """(world, open searcher, tokenizer, run root) over `toy_run`, for rollout-level tests."""
    from transformers import AutoTokenizer

    from minisearch.search import open_searcher

    root, world = toy_run
    tok = AutoTokenizer.from_pretrained(root / "model")
    with open_searcher(root / "index") as searcher:
        yield world, searcher, tok, root
