"""Building a bm25s index in bounded memory, for corpora of tens of millions of passages.

bm25s's own `BM25.index` holds every passage's token list as Python lists (about 4 GB per
million passages), so wiki-18's 21M passages do not fit a desktop. This builder writes the
same index files (`bm25s.BM25.load(..., mmap=True)` reads them; the scores are bit for bit
those bm25s computes) from a stream, in three steps:

1. analyse each passage once: its JSONL line is written out, its terms become ids, and its
   (term, doc, tf) entries gather in compact arrays; every `run_entries` entries they are
   sorted by term and written to a run file on disk; document frequencies are counted;
2. compute the idf of every term and the length norm of every passage (Lucene's BM25);
3. for each block of terms (about `block_entries` scores), read that block's slice of every
   run, sort it by term (the runs are in passage order, so passages stay ascending), score
   it and append it to the matrix files.

Memory: the vocabulary (a dict), 4 bytes per passage of lengths, 8 of offsets, 8 of length
norms, and one run or one block of arrays at a time; bench/index_scale.py measures it.
Disk, while building: 12 bytes per (term, passage) pair for the runs.
"""

from __future__ import annotations

import json
import math
import shutil
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from minisearch.search.bm25s_terms import Analyzer, import_bm25s

K1, B = 1.2, 0.75
DTYPE, INT_DTYPE = "float32", "int32"
FIELDS = ("terms", "docs", "tfs")


def build(passages: Iterable[dict], out: Path, procs: int = 1, run_entries: int = 16_000_000,
          block_entries: int = 16_000_000, progress: bool = True) -> int:
    """Index passages into the folder `out` (passages.jsonl, offsets.npy, bm25s/); return how many.

    `procs` is accepted for a uniform interface (analysis is one process). Smaller
    `run_entries`/`block_entries` use less memory and more files; the index is the same.
    """
    from tqdm import tqdm

    bm25s, _ = import_bm25s()
    analyze = Analyzer()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "build.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    vocab: dict[str, int] = {}
    offsets, lengths = array("q"), array("I")
    buf = {name: array("I") for name in FIELDS}
    runs: list[int] = []  # entries per run
    df = np.zeros(0, dtype=np.int64)

    def flush():
        nonlocal df
        if not buf["terms"]:
            return
        terms = np.frombuffer(buf["terms"], dtype=np.uint32)
        order = np.argsort(terms, kind="stable")
        for name in FIELDS:
            np.frombuffer(buf[name], dtype=np.uint32)[order].tofile(work / f"run-{len(runs)}.{name}")
        counts = np.bincount(terms, minlength=len(vocab))
        del terms
        df = np.concatenate([df, np.zeros(len(counts) - len(df), dtype=np.int64)]) + counts
        runs.append(len(order))
        for name in FIELDS:
            buf[name] = array("I")

    with (out / "passages.jsonl").open("wb") as f:
        for passage in tqdm(passages, desc="index (analyse)", unit=" passages", mininterval=2.0,
                            disable=not progress):
            doc = len(offsets)
            offsets.append(f.tell())
            f.write((json.dumps({"id": passage["id"], "contents": passage["contents"]},
                                ensure_ascii=False) + "\n").encode())
            words = analyze(passage["contents"])
            lengths.append(len(words))
            tf = Counter(vocab.setdefault(w, len(vocab)) for w in words)
            buf["terms"].extend(tf.keys())
            buf["tfs"].extend(tf.values())
            buf["docs"].extend([doc] * len(tf))
            if len(buf["terms"]) >= run_entries:
                flush()
    flush()
    n_docs = len(offsets)
    np.save(out / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
    if n_docs:
        _write_matrix(out / "bm25s", work, runs, df, np.frombuffer(lengths, dtype=np.uint32), block_entries,
                      progress)
        (out / "bm25s" / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False))
        params = {"k1": K1, "b": B, "delta": 0.5, "method": "lucene", "idf_method": "lucene", "dtype": DTYPE,
                  "int_dtype": INT_DTYPE, "num_docs": n_docs, "version": bm25s.__version__, "backend": "numpy"}
        (out / "bm25s" / "params.index.json").write_text(json.dumps(params, indent=4))
    shutil.rmtree(work)
    return n_docs


def idf_of(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5)), computed as bm25s does (math.log in
    float64, stored as float32), so the scores match its own build bit for bit."""
    return np.fromiter((math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for d in df.tolist()),
                       dtype=np.float64, count=len(df)).astype(DTYPE)


def _write_matrix(folder: Path, work: Path, runs: list[int], df: np.ndarray, lengths: np.ndarray,
                  block_entries: int, progress: bool) -> None:
    """The CSC score matrix (columns = terms, rows = passages) in bm25s's three .npy files."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    n_docs, nnz = len(lengths), int(df.sum())
    idf = idf_of(df, n_docs)
    avg = lengths.sum(dtype=np.int64) / n_docs
    norm = K1 * ((1 - B) + B * lengths.astype(np.float64) / avg)  # bm25s's tf denominator, less tf
    indptr = np.zeros(len(df) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    np.save(folder / "indptr.csc.index.npy", indptr)
    # block boundaries: term ids where the running count of entries passes block_entries
    cuts = np.unique(np.searchsorted(indptr, np.arange(0, nnz, block_entries), side="right") - 1)
    bounds = np.append(cuts, len(df)).astype(np.int64)
    where = []  # for each run, where each boundary term starts in it
    for r in range(len(runs)):
        terms = np.fromfile(work / f"run-{r}.terms", dtype=np.uint32)
        where.append(np.searchsorted(terms, bounds, side="left"))
    with _npy(folder / "data.csc.index.npy", DTYPE, nnz) as data, \
            _npy(folder / "indices.csc.index.npy", INT_DTYPE, nnz) as indices:
        for b in tqdm(range(len(bounds) - 1), desc="index (score)", unit=" blocks", disable=not progress):
            parts = {name: [] for name in FIELDS}
            for r, at in enumerate(where):
                lo, hi = int(at[b]), int(at[b + 1])
                for name in FIELDS:
                    parts[name].append(np.fromfile(work / f"run-{r}.{name}", dtype=np.uint32, count=hi - lo,
                                                   offset=4 * lo))
            terms, docs, tfs = _sorted_block(parts)
            del parts
            score = tfs.astype(np.float64)                  # bm25s: idf * tf / (norm + tf), in float64
            den = norm[docs]
            den += score
            np.divide(score, den, out=score)
            del den
            score *= idf[terms]
            score.astype(DTYPE).tofile(data)
            docs.view(np.int32).tofile(indices)             # passage numbers < 2**31


def _sorted_block(parts: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block's entries from every run, by term; passages stay ascending within a term
    (the runs are in passage order and the sort is stable)."""
    terms = np.concatenate(parts["terms"])
    order = np.argsort(terms, kind="stable")
    return terms[order], np.concatenate(parts["docs"])[order], np.concatenate(parts["tfs"])[order]


class _npy:
    """A 1-d .npy file written front to back by plain writes (no memory map, so the pages
    written are the page cache's, not this process's)."""

    def __init__(self, path: Path, dtype: str, length: int):
        self.file = path.open("wb")
        np.lib.format.write_array_header_2_0(
            self.file, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (length,)})
        self.expected = self.file.tell() + length * np.dtype(dtype).itemsize

    def __enter__(self):
        return self.file

    def __exit__(self, *exc):
        end = self.file.tell()
        self.file.close()
        if exc[0] is None and end != self.expected:
            raise AssertionError(f"{self.file.name}: wrote {end} bytes, expected {self.expected}")
