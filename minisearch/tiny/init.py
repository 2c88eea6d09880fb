"""The init stage: the tiny CPU model (`tiny/model.py`) built for a run, as a stage folder.

    minisearch init --corpus runs/demo/corpus/passages.jsonl --out runs/demo/init

Its tokenizer is trained on the corpus and on the agent's prompts, so their words and the
protocol's tags are whole tokens; the weights are random (with the planted copy head), and the
warmup stage (`tiny/warmup.py`) gives them a language-model warm-up next.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from minisearch.records import TINY_INFO
from minisearch.settings import Settings, setting
from minisearch.tiny.model import TinyModelConfig, init_model


@dataclass
class InitConfig(Settings):
    corpus: str = setting(help="Passages to train the tokenizer on (any corpus source).", path=True)
    out: str = setting(help="Model folder to write.")
    arch: TinyModelConfig = setting(TinyModelConfig())


def run(cfg: InitConfig, echo=print) -> Path:
    """Tokenizer + random model as a stage folder, written whole with done.json."""
    from minisearch.agent.protocol import TAGS, ramp_question, system_prompt
    from minisearch.data.corpus import iter_passages
    from minisearch.records import MASK
    from minisearch.rundir import stage_folder

    prompts = [system_prompt(), ramp_question(MASK)] * 20  # so the prompts' words are whole tokens
    with stage_folder(cfg.out, asdict(cfg)) as (tmp, counts):
        init_model(list(iter_passages(cfg.corpus)), tmp, TAGS, cfg.arch, extra_texts=prompts)
        made = json.loads((tmp / TINY_INFO).read_text())
        counts.update(parameters=made["parameters"], passages=made["passages"], vocab_size=cfg.arch.vocab_size)
    echo(f"tiny model ready: {counts['parameters']:,} parameters, trained tokenizer, in {cfg.out}")
    return Path(cfg.out)
