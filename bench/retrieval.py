"""Retrieval speed: Whoosh (our path and out of the box) against bm25s, in one run.

    python bench/retrieval.py                       # toy world 10k + 100k, real text
    python bench/retrieval.py --sizes 2000 --tasks 50   # a quick look

For each corpus it builds both indexes and reports: indexing docs/s; queries/s one at a
time with no cache (`single`); the realistic stream of an RL step one query at a time with
the cache (`stream`) and its cache hit rate; the same stream sent as one batch per step
(`batched`, Whoosh over a 2-process pool); top-10 agreement between the backends; and the
baseline, Whoosh out of the box (its query parser over title+contents, one searcher, no
cache), measured in the same run, with each figure's ratio to it.

The query stream imitates rollouts: each step takes `--tasks-per-step` tasks, G samples
each; every sample issues 1-3 searches, each a variant of what the task needs (the question,
the entity's name, the name plus a word of the question, the question with a word dropped).
So queries repeat within a group and across steps, as they do in training.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minisearch.jsonl import read_jsonl  # noqa: E402
from minisearch.search import build_index, open_searcher  # noqa: E402

WORD = re.compile(r"\w+")


def variants_toy(names: dict[str, str], task) -> list[str]:
    """What a rollout might search for a toy question; `names` maps entity id -> name."""
    entity_names = [names[e] for e in task["metadata"].get("entities", [])]
    q = task["question"]
    words = WORD.findall(q)
    out = [q, *entity_names]
    if entity_names:
        out.append(f"{entity_names[0]} {random.Random(q).choice(words)}")
    if len(words) > 3:
        drop = random.Random(q + "!").randrange(len(words))
        out.append(" ".join(w for i, w in enumerate(words) if i != drop))
    return out


def variants_text(passage) -> list[str]:
    title, _, text = passage["contents"].partition("\n")
    words = WORD.findall(text)
    rng = random.Random(passage["id"])
    j = rng.randrange(max(1, len(words) - 6))
    return [title, f"{title} {' '.join(rng.sample(words, min(2, len(words))))}",
            " ".join(words[j:j + rng.randint(3, 6)]), " ".join(rng.sample(words, min(2, len(words))))]


def query_stream(task_variants: list[list[str]], steps: int, tasks_per_step: int, group: int, seed: int):
    """A list of steps, each a list of queries, as G rollouts per task would write them."""
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        step = []
        for variants in rng.sample(task_variants, min(tasks_per_step, len(task_variants))):
            for _ in range(group):
                for _ in range(rng.choice((1, 1, 2, 2, 3))):
                    # the first variants are the likely ones: a few per task, as models converge
                    step.append(variants[min(int(rng.expovariate(1.0)), len(variants) - 1)])
        out.append(step)
    return out


def parser_baseline(folder: Path, queries: list[str], k: int) -> tuple[float, int, list[list[str]]]:
    """Whoosh out of the box: MultifieldParser over title+contents, OR of the words.

    Returns queries/s, how many queries its parser rejected, and the top-k ids of each."""
    from whoosh import index
    from whoosh.qparser import MultifieldParser, OrGroup

    ix = index.open_dir(str(folder / "whoosh"))
    parser = MultifieldParser(["title", "contents"], ix.schema, group=OrGroup)
    errors, tops = 0, []
    with ix.searcher() as s:
        start = time.perf_counter()
        for q in queries:
            try:
                tops.append([hit["id"] for hit in s.search(parser.parse(q), limit=k)])
            except Exception:
                errors += 1
                tops.append([])
        return len(queries) / (time.perf_counter() - start), errors, tops


def timed(fn, *args) -> float:
    """Seconds that fn(*args) took."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def one_by_one(searcher, queries, k=3):
    for q in queries:
        searcher.search([q], k=k)


def per_step(searcher, steps, k=3):
    for step in steps:
        searcher.search(step, k=k)


def bench_corpus(name, passages, task_variants, probes, args, tmp: Path) -> list[dict]:
    """`probes`: (query, id of the passage it should find) for single-query speed and hit@3."""
    stream = query_stream(task_variants, args.steps, args.tasks_per_step, args.group, args.seed)
    flat = [q for step in stream for q in step]
    probes = random.Random(args.seed).sample(probes, min(args.single, len(probes)))
    unique = [q for q, _ in probes]
    rows, tops = [], {}
    for backend in ("whoosh", "bm25s"):
        folder = tmp / f"{name}-{backend}"
        seconds = timed(build_index, passages, folder, backend)
        row = {"corpus": name, "passages": len(passages), "backend": backend,
               "index_docs_s": len(passages) / seconds}
        with open_searcher(folder, cache_size=0) as s:
            s.search(unique[:5], k=3)  # warm-up (numba compiles on first use)
            row["single_q_s"] = len(unique) / timed(one_by_one, s, unique)
            tops[backend] = [[h.id for h in s.search([q], k=10)[0]] for q in unique]
        row["hit_at_3"] = sum(target in top[:3] for (_, target), top in zip(probes, tops[backend])) / len(probes)
        with open_searcher(folder) as s:
            row["stream_q_s"] = len(flat) / timed(one_by_one, s, flat)
            row["cache_hit_rate"] = s.cache_hit_rate
        workers = 2 if backend == "whoosh" else 1
        with open_searcher(folder, workers=workers) as s:
            s.search(unique[:64], k=3)  # start the pool outside the timing
            s.cache.clear()
            row["batched_q_s"] = len(flat) / timed(per_step, s, stream)
        rows.append(row)
    base_qs, errors, base_tops = parser_baseline(tmp / f"{name}-whoosh", unique, k=3)
    base_hit = sum(target in top for (_, target), top in zip(probes, base_tops)) / len(probes)
    agree = sum(len(set(a) & set(b)) / max(1, len(a)) for a, b in zip(tops["whoosh"], tops["bm25s"]))
    for row in rows:
        row.update(baseline_q_s=base_qs, baseline_parse_errors=errors, baseline_hit_at_3=base_hit, queries=len(flat),
                   unique_queries=len(unique), top10_agreement=agree / max(1, len(unique)))
    return rows


def print_table(rows: list[dict]) -> None:
    head = ("corpus", "passages", "backend", "index docs/s", "single q/s", "stream q/s", "cache hits",
            "batched q/s", "x baseline", "hit@3", "top10 agree")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join([r["corpus"], f"{r['passages']:,}", r["backend"], f"{r['index_docs_s']:,.0f}",
                          f"{r['single_q_s']:,.0f}", f"{r['stream_q_s']:,.0f}", f"{r['cache_hit_rate']:.0%}",
                          f"{r['batched_q_s']:,.0f}", f"{r['batched_q_s'] / r['baseline_q_s']:,.1f}",
                          f"{r['hit_at_3']:.0%}", f"{r['top10_agreement']:.0%}"]))
    print()
    for r in rows[::2]:
        print(f"baseline ({r['corpus']}): Whoosh out of the box {r['baseline_q_s']:,.1f} q/s single, "
              f"hit@3 {r['baseline_hit_at_3']:.0%}, {r['baseline_parse_errors']} of {r['unique_queries']} "
              f"queries raised in its parser; stream of {r['queries']:,} queries")


def main() -> None:
    ap = argparse.ArgumentParser(description="Retrieval benchmark (prints a table).")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000], help="toy-world sizes")
    ap.add_argument("--realtext", default=str(ROOT / "data" / "wiki-summaries.jsonl"))
    ap.add_argument("--steps", type=int, default=6, help="RL steps in the query stream")
    ap.add_argument("--tasks-per-step", type=int, default=32)
    ap.add_argument("--group", type=int, default=8, help="G, samples per task")
    ap.add_argument("--single", type=int, default=400, help="unique queries for the single/no-cache runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "retrieval.json"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            from minisearch.data.toyworld import build_world

            world = build_world(size, seed=args.seed)
            tasks = world.qa["train"]
            names = {e.id: e.name for e in world.entities}
            probes = [(t["question"], t["metadata"]["source_ids"][0]) for t in tasks]
            rows += bench_corpus(f"toy-{size // 1000}k", world.passages,
                                 [variants_toy(names, t) for t in tasks], probes, args, Path(tmp))
            print(f"done: toy world {size}", file=sys.stderr)
        if Path(args.realtext).is_file():
            passages = list(read_jsonl(args.realtext))
            variants = [variants_text(p) for p in passages]
            probes = [(v[2], p["id"]) for v, p in zip(variants, passages)]  # a phrase of the passage
            rows += bench_corpus("wiki-10k", passages, variants, probes, args, Path(tmp))
        else:
            print(f"skipping real text: {args.realtext} missing (make data)", file=sys.stderr)
    print_table(rows)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
