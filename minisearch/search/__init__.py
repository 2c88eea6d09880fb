"""Search behind one interface: `open_searcher(index_dir).search(queries, k, exclude_ids)`.

An index is a folder or the URL of a retrieval server (`minisearch serve`, or any server
of the Search-R1 API): `open_searcher("http://127.0.0.1:8000/retrieve")` searches over HTTP
with the same interface and the same hits (minisearch.search.remote).

Backends: `whoosh` (default; BM25F, pure Python) and `bm25s` (optional extra; sparse
matrices, much faster on large corpora). An index folder holds `meta.json` (which backend,
how many passages, where they came from) and the backend's files.

    minisearch index build runs/demo/corpus --out runs/demo/index
    minisearch index search runs/demo/index "who founded Vethmora Holdings" -k 3
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable
from pathlib import Path

from minisearch.errors import UserError
from minisearch.search.hit import Hit
from minisearch.search.remote import is_url
from minisearch.search.searcher import Searcher

__all__ = ["BACKENDS", "Hit", "Searcher", "build_index", "index_info", "open_searcher"]

BACKENDS = ("whoosh", "bm25s")
SEARCH_PACKAGES = {"whoosh": (), "bm25s": ("bm25s", "Stemmer")}  # beyond the base install (numba: optional speed)
META = "meta.json"
HOW_TO_BUILD = ("build one with `minisearch index build SOURCE --out {folder}` "
                "(SOURCE: passages JSONL, a folder of .txt/.md/.jsonl files, or `toyworld`)")


def _backend_module(name: str):
    if name == "whoosh":
        from minisearch.search import whoosh_backend as module
    elif name == "bm25s":
        from minisearch.search import bm25s_backend as module
    else:
        raise UserError(f"unknown search backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return module


def build_index(passages: Iterable[dict], out: str | Path, backend: str = "whoosh", procs: int = 1,
                source: str = "") -> dict:
    """Index passages into the folder `out` (which should be empty); return its meta.json."""
    out = Path(out)
    module = _backend_module(backend)
    start = time.time()
    count = module.build(passages, out, procs=procs)
    if count == 0:
        raise UserError(f"no passages to index from {source or 'the input'}")
    meta = {"backend": backend, "format": 1, "passages": count, "source": source,
            "index_seconds": round(time.time() - start, 2), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def search_needs(index: str | None, why: str, backend: str | None = None) -> list:
    """What searching the index at `index` needs (`minisearch.needs`): the index itself (a
    server URL is reached when the stage starts) and its backend's packages; with `backend`,
    what building one with that backend needs."""
    from minisearch.needs import file, package

    fix = "pip install -e '.[bm25s]'"
    if backend is not None:
        return [package(m, why, fix) for m in SEARCH_PACKAGES[backend]]
    if not index or is_url(index):
        return []
    try:  # an index built before the run; one an earlier stage builds is that stage's need
        used = json.loads((Path(index) / META).read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        used = None
    return [file(index, why, HOW_TO_BUILD.format(folder=index))] + [
        package(m, why, fix) for m in SEARCH_PACKAGES.get(used, ())]


def read_meta(folder: str | Path) -> dict:
    """An index's meta.json; for a server URL, the same fields from its /health."""
    if is_url(folder):
        from minisearch.search.remote import remote_meta

        return remote_meta(folder)
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"no index at {folder}: " + HOW_TO_BUILD.format(folder=folder))
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{folder} is not a minisearch index or is damaged ({META}: {e}); rebuild it: "
                        + HOW_TO_BUILD.format(folder=folder)) from e
    if meta.get("backend") not in BACKENDS:
        raise UserError(f"{folder}/{META} names an unknown backend {meta.get('backend')!r}; rebuild it: "
                        + HOW_TO_BUILD.format(folder=folder))
    return meta


def open_searcher(folder: str | Path, cache_size: int = 50_000, workers: int = 1, **options) -> Searcher:
    """Open an index folder for searching; a missing or damaged index raises UserError.

    `options` go to the backend (whoosh: `prune_df`, see minisearch.search.whoosh_backend).
    A URL opens a `RemoteSearcher` (the server owns its cache, workers and options).
    """
    if is_url(folder):
        from minisearch.search.remote import RemoteSearcher

        return RemoteSearcher(folder)
    folder = Path(folder)
    meta = read_meta(folder)
    module = _backend_module(meta["backend"])
    opener = functools.partial(module.Backend, **options)
    try:
        backend = opener(folder)
    except UserError:
        raise
    except Exception as e:  # any failure to read the backend's files means a damaged index
        raise UserError(f"cannot open the {meta['backend']} index at {folder} ({type(e).__name__}: {e}); "
                        "rebuild it: " + HOW_TO_BUILD.format(folder=folder)) from e
    return Searcher(backend, folder, opener, cache_size=cache_size, workers=workers)


def index_info(folder: str | Path) -> dict:
    """What `minisearch index info` prints: the meta plus the size on disk."""
    if is_url(folder):
        return read_meta(folder)
    folder = Path(folder)
    info = {"folder": str(folder), **read_meta(folder)}
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    info["disk_mb"] = round(size / 2**20, 1)
    return info
