"""Peak RAM of the bm25s build as the corpus grows, fitted out to wiki-18's 21M passages.

    python bench/index_scale.py                          # 0.25M, 0.5M, 1M, 2M passages
    python bench/index_scale.py --sizes 20000,50000 --json out.json    # a quick look

Each size is built in a fresh process (so each peak is its own), from passages made out of
the ~10k Wikipedia summaries (`make data`): 100-word windows at a random offset, the numbers
redrawn, and one word in 30 replaced by a rare made-up word drawn from a pool that grows
with the corpus, so the vocabulary keeps growing as real text's does (more than real text,
which is the safe side: the vocabulary is the one part of the build that grows in RAM).
Prints, per size: the build's peak RSS (measured in the building process right after the
build), build time, vocabulary, disk, the RSS while searching (after the build, with the
matrices memory-mapped; the pages the queries touched count) and the mean time of a query
(bm25s's numpy backend; numba's too when it is installed). Then a least-squares line through
the build peaks and its value at 21M (through all sizes: the smaller ones have not filled the
build's fixed-size buffers yet, so the line is steeper than the growth, the safe side).
`--json` writes the table and `peak_gb_at_21m`.

    python bench/index_scale.py --sizes 5000000 --with results/index-scale.json --json out.json

`--with` adds the rows of an earlier `--json` (sizes measured again replace them), so one large
build joins the small ones. The figure at 21M (`peak_gb_at_21m`) is then the line through the
sizes of 1M passages and up, where the build's fixed buffers (one run and one block of 16M
entries, ~0.4 GB) are full and what still grows is the vocabulary (a dict entry per term) and
20 bytes a passage (lengths, offsets, norms); the line through every size stays beside it
(`peak_gb_at_21m_all_sizes`, steeper). The growth between the two largest sizes is split into
those two parts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIKI18 = 21_015_324  # FlashRAG's wiki-18 (Dec 2018 English Wikipedia, 100-word passages)
NUMBER = re.compile(r"\d+")
WORDS = 100
PER_PASSAGE_BYTES = 20  # the builder's arrays: 4 bytes of length, 8 of offset, 8 of length norm
AT_SCALE = 1_000_000    # from here on the build's fixed-size buffers are full


def synthetic(n: int, source: Path, seed: int = 0):
    """`n` passages of realistic text (see the module docstring), deterministic per seed."""
    rows = [json.loads(line) for line in source.open()]
    texts = [(r["contents"].split("\n", 1) + [""])[:2] for r in rows]
    rng = random.Random(seed)
    pool = max(1000, n // 2)  # the made-up words: up to n/2 of them
    for i in range(n):
        title, text = texts[i % len(texts)]
        words = text.split() or title.split()
        start = rng.randrange(max(1, len(words) - WORDS + 1))
        window = words[start:start + WORDS]
        for j in range(0, len(window), 30):
            window[min(len(window) - 1, j + rng.randrange(30))] = f"zq{rng.randrange(pool):x}"
        body = NUMBER.sub(lambda m: str(rng.randrange(10 ** len(m.group()))), " ".join(window))
        yield {"id": f"s{i}", "contents": f"{title}\n{body}"}


def child(n: int, out: Path, source: Path) -> None:
    """Build one index (the measured process) and time queries against it."""
    import resource

    from minisearch.search import build_index, open_searcher
    from minisearch.search.bm25s_backend import Backend

    start = time.time()
    build_index(synthetic(n, source), out, backend="bm25s")
    seconds = time.time() - start
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # the build's own peak
    queries = [p["contents"].split("\n")[0] + " " + " ".join(p["contents"].split()[5:8])
               for p in synthetic(200, source, seed=1)]
    timing = {}
    import psutil

    with open_searcher(out, cache_size=0) as s:  # the searcher as the stages open it
        s.search(queries[:5], k=10)
        searching = psutil.Process().memory_info().rss / 1e9  # after the build's memory went back
    backend = Backend(out)
    batch = [tuple(backend.terms(q)) for q in queries]
    for scorer in ("numpy", "numba"):  # bm25s's two scoring backends, on the same index
        if scorer == "numba":
            try:
                import numba  # noqa: F401
            except ImportError:
                break
        backend.retriever.backend = scorer
        backend.top(batch[:5], 10)  # numba compiles here
        t = time.time()
        backend.top(batch, 10)
        timing[scorer] = (time.time() - t) / len(queries)
    searching = max(searching, psutil.Process().memory_info().rss / 1e9)
    backend.close()
    vocab = len(json.loads((out / "bm25s" / "vocab.index.json").read_text()))
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(json.dumps({"seconds": seconds, "build_peak_gb": build_peak, "vocab": vocab, "searcher_rss_gb": searching,
                      "disk_gb": disk / 1e9,
                      "query_ms": {k: v * 1000 for k, v in timing.items()}}))


def measure(n: int, source: Path) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(n), "--out", f"{tmp}/idx",
                                 "--source", str(source)], stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        lines = proc.stdout.read().strip().splitlines()
        if status != 0 or not lines:
            raise SystemExit(f"the build of {n} passages failed (status {status})")
        row = json.loads(lines[-1])
    return {"passages": n, "process_peak_gb": usage.ru_maxrss * 1024 / 1e9, **row}


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="250000,500000,1000000,2000000")
    ap.add_argument("--source", default=str(ROOT / "data" / "wiki-summaries.jsonl"))
    ap.add_argument("--json", help="write the table and the fitted peak here")
    ap.add_argument("--with", dest="earlier", help="an earlier --json whose rows join this run's")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    source = Path(args.source)
    if not source.is_file():
        raise SystemExit(f"{source} is missing; `make data` writes it")
    if args.child:
        return child(args.child, Path(args.out), source)
    rows = []
    print(f"{'passages':>10} {'build peak':>10} {'build':>6} {'/s':>6} {'vocab':>9} {'disk':>7} {'searching':>9}"
          f" {'query ms':>22}")
    for n in (int(s) for s in args.sizes.split(",")):
        row = measure(n, source)
        rows.append(row)
        q = " ".join(f"{k} {v:.1f}" for k, v in row["query_ms"].items())
        print(f"{n:>10,} {row['build_peak_gb']:>8.2f}GB {row['seconds']:>5.0f}s {n / row['seconds']:>6,.0f} "
              f"{row['vocab']:>9,} {row['disk_gb']:>5.2f}GB {row['searcher_rss_gb']:>7.2f}GB {q:>22}", flush=True)
    if args.earlier:
        measured = {r["passages"] for r in rows}
        rows += [r for r in json.loads(Path(args.earlier).read_text())["rows"] if r["passages"] not in measured]
        rows.sort(key=lambda r: r["passages"])
    if len(rows) < 2:
        return print("one size: no fit (give --sizes two or more, or --with an earlier run)")
    slope, icpt = fit([r["passages"] for r in rows], [r["build_peak_gb"] for r in rows])
    big = [r for r in rows if r["passages"] >= AT_SCALE]
    scale_fit = fit([r["passages"] for r in big], [r["build_peak_gb"] for r in big]) if len(big) >= 2 else None
    s_slope, s_icpt = fit([r["passages"] for r in rows], [r["searcher_rss_gb"] for r in rows])
    at = slope * WIKI18 + icpt
    sec = fit([r["passages"] for r in rows], [r["seconds"] for r in rows])
    print(f"fit: build peak RAM = {icpt:.2f} GB + {slope * 1e6:.3f} GB per 1M passages -> {at:.1f} GB at "
          f"{WIKI18 / 1e6:.0f}M (wiki-18); build time there ~{(sec[0] * WIKI18 + sec[1]) / 3600:.1f} h on this machine")
    print(f"fit: searching RSS = {s_icpt:.2f} GB + {s_slope * 1e6:.3f} GB per 1M -> {s_slope * WIKI18 + s_icpt:.1f} GB "
          "at 21M (most of it the memory-mapped matrix pages the queries read, which the kernel can drop)")
    result = {"rows": rows, "gb_per_million": slope * 1e6, "intercept_gb": icpt, "peak_gb_at_21m": at,
              "peak_gb_at_21m_all_sizes": at, "searching_gb_at_21m": s_slope * WIKI18 + s_icpt}
    if scale_fit:
        result.update(growth(big, scale_fit))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def growth(big: list[dict], line: tuple[float, float]) -> dict:
    """The line through the sizes at scale, and the growth between the two largest split into
    the per-passage arrays and the rest (the vocabulary: bytes per new term)."""
    slope, icpt = line
    a, b = big[-2], big[-1]
    grew = (b["build_peak_gb"] - a["build_peak_gb"]) * 1e9
    arrays = (b["passages"] - a["passages"]) * PER_PASSAGE_BYTES
    terms = b["vocab"] - a["vocab"]
    per_term = (grew - arrays) / terms if terms else float("nan")
    sizes = ", ".join(f"{r['passages'] / 1e6:g}M" for r in big)
    print(f"at scale ({sizes}): build peak RAM = {icpt:.2f} GB + "
          f"{slope * 1e6:.3f} GB per 1M passages -> {slope * WIKI18 + icpt:.1f} GB at 21M")
    print(f"{a['passages'] / 1e6:g}M -> {b['passages'] / 1e6:g}M: peak +{grew / 1e9:.2f} GB = per-passage arrays "
          f"+{arrays / 1e9:.2f} GB + {terms:,} new terms x {per_term:.0f} B (the vocabulary dict)")
    return {"gb_per_million_at_scale": slope * 1e6, "intercept_gb_at_scale": icpt,
            "peak_gb_at_21m": slope * WIKI18 + icpt, "growth_bytes_per_term": per_term}


if __name__ == "__main__":
    main()
