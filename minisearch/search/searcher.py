"""Batched search with exclusions, a result cache and an optional process pool.

Backend-agnostic: a backend turns a query string into terms and returns the top-n hits
for a batch of term tuples. This layer owns what every backend shares:

- query normalisation: unique terms in order of first use, capped at `max_terms`, sorted,
  so "river Velk" and "Velk river" are one cache entry;
- exclusions (a RAMP task's own passage): fetch k + |excluded| hits, drop the excluded;
- an LRU cache of results (rollouts of G samples per task repeat queries a lot);
- a pool of worker processes, each with its own open backend, for large batches of misses.
"""

from __future__ import annotations

import multiprocessing
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from minisearch.search.hit import Hit

MAX_TERMS = 32
_WORKER_BACKEND = None


def clean_query(query) -> str:
    """Any value to a safe str: non-strings become '', lone surrogates and NULs are dropped."""
    if not isinstance(query, str):
        return ""
    return query.encode("utf-8", "ignore").decode("utf-8").replace("\x00", " ")


class Searcher:
    """`search(queries, k, exclude_ids) -> hits`, one list of hits per query, for example

        searcher.search(["Velkaran river length"], k=3, exclude_ids=[{"toy-000012"}])

    gives the top 3 hits of that one query, never the passage toy-000012 (a RAMP task's own).
    """

    def __init__(self, backend, folder: Path, opener, cache_size: int = 50_000, workers: int = 1,
                 pool_min_batch: int = 16, max_terms: int = MAX_TERMS):
        self.backend = backend
        self.folder = Path(folder)
        self.opener = opener
        self.cache: OrderedDict[tuple[str, ...], tuple[list[Hit], bool]] = OrderedDict()
        self.cache_size = cache_size
        self.workers = workers
        self.pool_min_batch = pool_min_batch
        self.max_terms = max_terms
        self.pool: ProcessPoolExecutor | None = None
        self.lookups = 0
        self.cache_hits = 0

    def __len__(self) -> int:
        return len(self.backend)

    def key(self, query: str) -> tuple[str, ...]:
        terms = list(dict.fromkeys(self.backend.terms(clean_query(query))))
        return tuple(sorted(terms[: self.max_terms]))

    def search(self, queries: Sequence[str], k: int = 3,
               exclude_ids: Sequence[Iterable[str] | None] | None = None) -> list[list[Hit]]:
        """The top k hits of each query; `exclude_ids[i]` (an id or a collection of ids) are never
        returned for query i."""
        if isinstance(queries, str):
            raise TypeError("search() takes a list of queries; wrap a single query in a list")
        if exclude_ids is None:
            exclude_ids = [None] * len(queries)
        if len(exclude_ids) != len(queries):
            raise ValueError(f"exclude_ids has {len(exclude_ids)} entries for {len(queries)} queries")
        excluded = [frozenset([x]) if isinstance(x, str) else frozenset(x or ()) for x in exclude_ids]
        keys = [self.key(q) for q in queries]
        need = {}
        for key, skip in zip(keys, excluded):
            need[key] = max(need.get(key, 0), k + len(skip))
        self._fill(need)
        results = []
        for key, skip in zip(keys, excluded):
            hits = self.cache[key][0]
            results.append([h for h in hits if h.id not in skip][:k])
        return results

    def _fill(self, need: dict[tuple[str, ...], int]) -> None:
        """Make sure the cache holds at least need[key] hits (or all there are) for each key."""
        self.lookups += len(need)
        misses = {}
        for key, n in need.items():
            cached = self.cache.get(key)
            if cached is not None and (len(cached[0]) >= n or cached[1]):
                self.cache.move_to_end(key)
                self.cache_hits += 1
            else:
                misses[key] = n
        if misses:
            n = max(misses.values())
            batch = list(misses)
            for key, hits in zip(batch, self._top(batch, n)):
                self.cache[key] = (hits, len(hits) < n)  # fewer than asked: there are no more
                self.cache.move_to_end(key)
        while len(self.cache) > max(self.cache_size, len(need)):
            self.cache.popitem(last=False)

    def _top(self, batch: list[tuple[str, ...]], n: int) -> list[list[Hit]]:
        if self.workers <= 1 or len(batch) < self.pool_min_batch:
            return self.backend.top(batch, n)
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.opener, str(self.folder)))
        size = -(-len(batch) // (self.workers * 2))
        chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
        out = []
        for part in self.pool.map(_work, chunks, [n] * len(chunks)):
            out.extend(part)
        return out

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.lookups if self.lookups else 0.0

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _init_worker(opener, folder: str) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = opener(Path(folder))


def _work(batch: list[tuple[str, ...]], n: int) -> list[list[Hit]]:
    return _WORKER_BACKEND.top(batch, n)
