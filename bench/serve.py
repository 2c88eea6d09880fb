"""Load and abuse test of `minisearch serve`, loopback only, bounded in count and time.

    python bench/serve.py                                # toy world of 2,000, 1,000 requests, 50 clients
    python bench/serve.py --corpus data/wiki-summaries.jsonl
    python bench/serve.py --requests 200 --clients 20    # a quick look

The server is a real `minisearch serve` process. 50 concurrent clients send 1,000 POST
/retrieve requests of 1-8 queries each (questions, names and variants, as rollouts search);
every hit list must equal the in-process searcher's for the same queries. The baseline is
that in-process searcher answering the same requests one after another, cache cold at the
start like the server's, measured in the same run. Then the abuse cases: each must be a 4xx
with a JSON error, and the server must answer /health and a search after all of them.
Clients and server share this machine's cores, so the HTTP figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minisearch.jsonl import read_jsonl  # noqa: E402
from minisearch.search import build_index, open_searcher  # noqa: E402
from minisearch.search.remote import endpoints  # noqa: E402

ABUSE = {
    "malformed JSON": lambda: b'{"queries": ["a"',
    "10 MB body": lambda: json.dumps({"queries": ["x" * 1000] * 10_000}).encode(),
    "10,000 queries": lambda: json.dumps({"queries": ["river"] * 10_000}).encode(),
    "topk 10^6": lambda: json.dumps({"queries": ["river"], "topk": 10**6}).encode(),
    "non-string queries": lambda: json.dumps({"queries": [1, None, {"a": 2}]}).encode(),
    "queries not a list": lambda: json.dumps({"queries": "river"}).encode(),
    "a JSON array": lambda: b"[]",
}


def corpus_and_queries(corpus: str | None, size: int) -> tuple[list[dict], list[str]]:
    if corpus:
        passages = list(read_jsonl(corpus))
        titles = [p["contents"].split("\n", 1)[0] for p in passages]
        rng = random.Random(0)
        words = [w for p in passages[:2000] for w in p["contents"].split()[:30]]
        queries = titles + [" ".join(rng.sample(words, 3)) for _ in range(len(titles))]
        return passages, queries
    from minisearch.data.toyworld import build_world

    world = build_world(size, seed=0)
    names = [p["contents"].split("\n", 1)[0] for p in world.passages]
    questions = [q["question"] for split in world.qa.values() for q in split]
    return world.passages, questions + names + [f"{n} founded" for n in names]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "minisearch.cli", "serve", str(index), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.TransportError as e:
            if proc.poll() is not None:
                raise RuntimeError(f"minisearch serve exited: {proc.stderr.read().decode()[-2000:]}") from e
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("minisearch serve did not answer /health within 30 s")


async def load(url: str, batches: list[list[str]], clients: int, k: int) -> tuple[list, list[float], int]:
    """Send every batch from `clients` concurrent clients; (results, latencies, failures)."""
    import httpx

    results: list = [None] * len(batches)
    latencies: list[float] = []
    failures = 0
    todo = iter(range(len(batches)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http):
        nonlocal failures
        for i in todo:
            start = time.perf_counter()
            try:
                r = await http.post(url, json={"queries": batches[i], "topk": k, "return_scores": True})
                r.raise_for_status()
                results[i] = r.json()["result"]
            except Exception:  # any failure counts; the run goes on
                failures += 1
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return results, latencies, failures


def as_api(hits) -> list[dict]:
    return [{"document": {"id": h.id, "contents": h.contents}, "score": h.score} for h in hits]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def abuse(url: str) -> list[tuple[str, int, str]]:
    import httpx

    rows = []
    for name, body in ABUSE.items():
        try:
            r = httpx.post(url, content=body(), headers={"content-type": "application/json"}, timeout=30)
            rows.append((name, r.status_code, r.json().get("error", "")[:70]))
        except httpx.HTTPError as e:
            rows.append((name, 0, f"{type(e).__name__}: {e}"[:70]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", help="Passages JSONL (default: the toy world)")
    ap.add_argument("--size", type=int, default=2000, help="Toy world entities")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("-k", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import httpx

    passages, pool = corpus_and_queries(args.corpus, args.size)
    rng = random.Random(args.seed)
    batches = [rng.sample(pool, rng.randint(1, 8)) for _ in range(args.requests)]
    n_queries = sum(map(len, batches))
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        build_index(passages, index)
        with open_searcher(index) as local:
            start = time.perf_counter()
            expected, local_lat = [], []
            for batch in batches:
                t = time.perf_counter()
                expected.append([as_api(hits) for hits in local.search(batch, k=args.k)])
                local_lat.append(time.perf_counter() - t)
            local_s = time.perf_counter() - start
        port = free_port()
        url, health = endpoints(f"http://127.0.0.1:{port}")
        proc = start_server(index, port)
        try:
            start = time.perf_counter()
            got, lat, failures = asyncio.run(load(url, batches, args.clients, args.k))
            http_s = time.perf_counter() - start
            abused = abuse(url)
            alive = httpx.get(health).json().get("status") == "ok" and bool(
                httpx.post(url, json={"queries": [pool[0]], "topk": 1}).json()["result"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    mismatches = sum(g != e for g, e in zip(got, expected) if g is not None)
    print(f"## minisearch serve: {len(passages):,} passages, {args.requests} requests ({n_queries} queries), "
          f"{args.clients} clients, k={args.k}\n")
    print("| path | failures | hit lists unequal | p50 ms | p99 ms | queries/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    print(f"| in-process Searcher (baseline) | 0 | - | {percentile(local_lat, .5) * 1e3:.1f} | "
          f"{percentile(local_lat, .99) * 1e3:.1f} | {n_queries / local_s:.0f} | 1.00 |")
    print(f"| HTTP, {args.clients} clients | {failures} | {mismatches} | {percentile(lat, .5) * 1e3:.1f} | "
          f"{percentile(lat, .99) * 1e3:.1f} | {n_queries / http_s:.0f} | {local_s / http_s:.2f} |")
    print("\n| abuse | status | error |\n|---|---|---|")
    for name, status, message in abused:
        print(f"| {name} | {status} | {message} |")
    print(f"\nserver alive after all of them: {'yes' if alive else 'NO'}")
    ok = failures == 0 and mismatches == 0 and alive and all(400 <= s < 500 for _, s, _ in abused)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
