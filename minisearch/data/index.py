"""The index stage: passages -> a search index folder (Whoosh by default, or bm25s).

    minisearch index build runs/demo/corpus --out runs/demo/index          # a run's corpus
    minisearch index build ./notes                                          # writes ./notes.idx
    minisearch index build toyworld:10000 --out toy.idx --search-backend bm25s

The source is anything the corpus stage reads (a passages JSONL, a folder of .txt/.md/.jsonl,
`toyworld[:SIZE]`, `hf:DATASET`). The folder appears only when complete (done.json inside).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from minisearch.data.corpus import CorpusReport, iter_passages
from minisearch.rundir import stage_folder
from minisearch.search import BACKENDS, build_index
from minisearch.settings import Settings, setting


@dataclass
class IndexConfig(Settings):
    source: str = setting(help="Passages to index: a JSONL, a corpus folder, a folder of documents.", path=True,
                          arg=True)
    out: str | None = setting(None, help="Index folder [default: SOURCE.idx beside the source].")
    search_backend: str = setting("whoosh", help="whoosh (small corpora) or bm25s (big ones).", choices=BACKENDS,
                                  was="backend")
    procs: int = setting(1, help="Indexing processes (whoosh).", min=1)
    strict: bool = setting(False, help="Fail on the first bad input line instead of skipping it.")


def default_out(source: str) -> Path:
    """`./notes` -> `./notes.idx`; `toyworld:500` -> `toyworld-500.idx`."""
    source = source.rstrip("/")
    if Path(source).exists():
        return Path(source + ".idx")
    return Path(re.sub(r"[^\w.-]+", "-", source).strip("-.") + ".idx")


def run(cfg: IndexConfig, echo=print) -> Path:
    out = Path(cfg.out) if cfg.out else default_out(cfg.source)
    report = CorpusReport()
    with stage_folder(out, asdict(cfg)) as (tmp, counts):
        passages = tqdm(iter_passages(cfg.source, strict=cfg.strict, report=report),
                        desc=f"indexing ({cfg.search_backend})", unit=" passages", mininterval=1.0)
        meta = build_index(passages, tmp, backend=cfg.search_backend, procs=cfg.procs, source=cfg.source)
        counts.update(passages=meta["passages"], skipped=report.read - report.kept)
    if report.read != report.kept:
        echo(report.summary())
    return out
