"""The bm25s backend: BM25 over sparse matrices, for corpora where Whoosh is too slow.

bm25s is an optional extra (`pip install -e .[bm25s]`; numba, when installed, makes it faster
still), imported only here and by the build and the analyzer (bm25s_build, bm25s_terms). Whole
passages ("Title\\ntext") are one field; scoring is Lucene's BM25 (k1 1.2, b 0.75). Terms come
from our own analyzer (bm25s_terms: words, lowercase, English stop words, Snowball stemming), so
any query string is safe. Passages are stored beside the matrices in `passages.jsonl` and read back by byte offset, only
for the hits returned. The build streams (minisearch.search.bm25s_build) and the matrices
are memory-mapped, so a 21M-passage index fits a desktop's RAM.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from minisearch.records import split_contents
from minisearch.search.bm25s_build import build as streamed
from minisearch.search.bm25s_terms import Analyzer, import_bm25s
from minisearch.search.hit import Hit


def build(passages: Iterable[dict], out: Path, procs: int = 1) -> int:
    """Index passages into the folder `out`; return how many were added (in bounded memory:
    minisearch.search.bm25s_build)."""
    return streamed(passages, out, procs)


NUMBA_MIN_PASSAGES = 200_000


def scorer(passages: int) -> str:
    """bm25s's scoring backend: numba when it is installed and the index is large (about 50x
    faster a query at 2M passages, but it compiles for ~10 s in each process, which a small
    index never earns back), else numpy. Both give the same hits."""
    if passages < NUMBA_MIN_PASSAGES:
        return "numpy"
    try:
        import numba  # noqa: F401
    except ImportError:
        return "numpy"
    return "numba"


class Backend:
    """Top-n BM25 hits for analysed queries over one loaded bm25s index."""

    name = "bm25s"

    def __init__(self, folder: Path):
        bm25s, _ = import_bm25s()
        self.offsets = np.load(folder / "offsets.npy")
        self.retriever = bm25s.BM25.load(str(folder / "bm25s"), mmap=True, show_progress=False,
                                         backend=scorer(len(self.offsets)))
        self.vocab = self.retriever.vocab_dict
        self.file = (folder / "passages.jsonl").open("rb")
        self.analyze = Analyzer()

    def __len__(self) -> int:
        return len(self.offsets)

    def terms(self, query: str) -> list[str]:
        return self.analyze(query)

    def top(self, batch: list[tuple[str, ...]], n: int) -> list[list[Hit]]:
        n = min(n, len(self))
        ids = [[self.vocab[t] for t in terms if t in self.vocab] for terms in batch]
        todo = [i for i, row in enumerate(ids) if row]
        out: list[list[Hit]] = [[] for _ in batch]
        if not todo or n <= 0:
            return out
        docs, scores = self.retriever.retrieve([ids[i] for i in todo], k=n, show_progress=False)
        for row, i in enumerate(todo):
            out[i] = [self._hit(int(d), float(s)) for d, s in zip(docs[row], scores[row]) if s > 0]
        return out

    def _hit(self, doc: int, score: float) -> Hit:
        self.file.seek(int(self.offsets[doc]))
        passage = json.loads(self.file.readline())
        title, text = split_contents(passage["contents"])
        return Hit(passage["id"], title, text, score)

    def close(self) -> None:
        self.file.close()
