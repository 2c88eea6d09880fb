"""The Whoosh backend: the only module that imports Whoosh (the whoosh-ng distribution).

Queries never go through Whoosh's query parser. The query string is run through the
same analyzer as the index (tokenize, lowercase, stop words, Porter stemming) and the
terms are OR-ed over the title and contents fields, so quotes, colons, `AND(`, `*` or a
10 kB string are just words: no syntax, no exceptions. Scoring is Whoosh's BM25F with
the title field weighted 0.3: a title is a few words long, so a match there already scores
high (the weight's hit@3 against 2: docs/search.md).

Speed, as profiling showed: a query's time goes into walking the posting lists of its
terms, and a word found in a tenth of all passages ("born", "city", "founded") has a list
thousands long while adding little to BM25 (its idf is ~2, a name's ~10). So terms in more
than `prune_df` of the passages (and over 100) are dropped when the query has rarer ones
(the whole query is kept when it has none; its speed and hit@3, from `bench/retrieval.py`, are
in docs/search.md); `prune_df=None` turns it off. Also:
one searcher per process, reused; stored fields loaded only for the top hits. Batches over
processes and the result cache live in `minisearch.search.searcher`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.fields import ID, TEXT, Schema
from whoosh.query import Or, Term
from whoosh.scoring import BM25F

from minisearch.records import split_contents
from minisearch.search.hit import Hit

TITLE_BOOST = 0.3  # titles are short, so a title match already scores high; see docs/search.md
MIN_PRUNE_DF = 100
WORD = re.compile(r"\w+(?:\.\w+)*")


def analyzer():
    """Words (dotted abbreviations kept whole), lowercased, stop words out, Porter-stemmed."""
    return RegexTokenizer(WORD.pattern) | LowercaseFilter() | StopFilter() | StemFilter()


def schema() -> Schema:
    ana = analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        title=TEXT(analyzer=ana, stored=True, field_boost=TITLE_BOOST),
        contents=TEXT(analyzer=ana, stored=True),
    )


def build(passages: Iterable[dict], out: Path, procs: int = 1, limitmb: int = 256) -> int:
    """Index passages into `out/whoosh/`; return how many were added."""
    (out / "whoosh").mkdir(parents=True, exist_ok=True)
    ix = whoosh_index.create_in(str(out / "whoosh"), schema())
    kwargs = {"limitmb": limitmb}
    if procs > 1:
        kwargs.update(procs=procs, multisegment=False)
    writer = ix.writer(**kwargs)
    count = 0
    try:
        for passage in passages:
            title, text = split_contents(passage["contents"])
            writer.add_document(id=passage["id"], title=title, contents=text)
            count += 1
    except BaseException:
        writer.cancel()
        raise
    writer.commit()
    return count


class Backend:
    """Top-n BM25F hits for analysed queries over one open Whoosh index."""

    name = "whoosh"

    def __init__(self, folder: Path, prune_df: float | None = 0.1):
        self.ix = whoosh_index.open_dir(str(folder / "whoosh"))
        self.searcher = self.ix.searcher(weighting=BM25F())
        self.analyzer = self.ix.schema["contents"].analyzer
        # never prune a term found in under MIN_PRUNE_DF passages: small corpora are fast anyway
        self.max_df = max(prune_df * self.searcher.doc_count(), MIN_PRUNE_DF) if prune_df else None

    def __len__(self) -> int:
        return self.searcher.doc_count()

    def terms(self, query: str) -> list[str]:
        """The analysed terms of a query string, in order (duplicates kept)."""
        return [token.text for token in self.analyzer(query)]

    def top(self, batch: list[tuple[str, ...]], n: int) -> list[list[Hit]]:
        """The n best hits for each tuple of terms."""
        return [self._top_one(terms, n) for terms in batch]

    def _top_one(self, terms: tuple[str, ...], n: int) -> list[Hit]:
        if not terms:
            return []
        if self.max_df is not None:
            df = {t: self.searcher.doc_frequency("contents", t) for t in terms}
            terms = [t for t in terms if 0 < df[t] <= self.max_df] or terms
        query = Or([Term(field, term) for term in terms for field in ("title", "contents")])
        results = self.searcher.search(query, limit=n, terms=False)
        hits = []
        for i in range(min(n, results.scored_length())):
            fields = results.fields(i)
            hits.append(Hit(fields["id"], fields["title"], fields["contents"], float(results.score(i))))
        return hits

    def close(self) -> None:
        self.searcher.close()
        self.ix.close()
